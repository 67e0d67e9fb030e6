//! Proc macros of signal (filled in by the macro issue).
