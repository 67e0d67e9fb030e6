//! trybuild cases for the signal macros live in tests/.
