//! A small model of TypeScript types and its printer: one-line when a type fits
//! in [`WIDTH`] columns and carries no doc comments, broken over lines (in the
//! layout Prettier uses) otherwise.

/// The column a line should not pass.
pub(crate) const WIDTH: usize = 80;

/// Doc comment text and deprecation, from a schema's `description` and
/// `deprecated`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Docs {
    pub(crate) text: String,
    pub(crate) deprecated: bool,
}

impl Docs {
    pub(crate) fn new(text: &str) -> Self {
        Docs {
            text: text.trim().to_owned(),
            deprecated: false,
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.text.is_empty() && !self.deprecated
    }

    /// The JSDoc comment at `indent`, each line ending in `\n`; empty when there
    /// is nothing to say.
    pub(crate) fn jsdoc(&self, indent: usize) -> String {
        if self.is_empty() {
            return String::new();
        }
        let pad = " ".repeat(indent);
        let mut lines: Vec<String> = Vec::new();
        let mut in_fence = false;
        let room = WIDTH.saturating_sub(indent + 3).max(40);
        for line in self.text.lines() {
            let line = line.trim_end().replace("*/", "*\\/");
            if line.trim_start().starts_with("```") {
                in_fence = !in_fence;
            }
            let verbatim = in_fence || line.starts_with("    ") || line.starts_with('|');
            if verbatim || line.len() <= room {
                lines.push(line);
            } else {
                wrap(&line, room, &mut lines);
            }
        }
        if self.deprecated {
            lines.push("@deprecated".to_owned());
        }
        if lines.len() == 1 && indent + lines[0].len() + 7 <= WIDTH {
            return format!("{pad}/** {} */\n", lines[0]);
        }
        let mut out = format!("{pad}/**\n");
        for line in lines {
            if line.is_empty() {
                out.push_str(&format!("{pad} *\n"));
            } else {
                out.push_str(&format!("{pad} * {line}\n"));
            }
        }
        out.push_str(&format!("{pad} */\n"));
        out
    }
}

/// Breaks `line` at spaces into lines of at most `room` characters (longer
/// words stay whole), keeping its leading spaces on each.
fn wrap(line: &str, room: usize, out: &mut Vec<String>) {
    let lead = &line[..line.len() - line.trim_start().len()];
    let mut current = String::new();
    for word in line.split_whitespace() {
        if !current.is_empty() && current.len() + 1 + word.len() > room {
            out.push(std::mem::take(&mut current));
        }
        if current.is_empty() {
            current.push_str(lead);
        } else {
            current.push(' ');
        }
        current.push_str(word);
    }
    if !current.is_empty() {
        out.push(current);
    }
}

/// A TypeScript type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Ty {
    /// `string`, `number`, `boolean`, `null`, `unknown`, `never`, `void`.
    Keyword(&'static str),
    /// A named type: a generated one or an import.
    Named(String),
    /// A literal type, already rendered (`"a"`, `1`, `true`).
    Literal(String),
    /// `T[]`.
    Array(Box<Ty>),
    /// `[A, B?, ...C[]]`: the first `required` elements are required.
    Tuple {
        elements: Vec<Ty>,
        required: usize,
        rest: Option<Box<Ty>>,
    },
    /// An object type.
    Object(Object),
    /// `A | B`, with docs per member.
    Union(Vec<Member>),
    /// `A & B`.
    Intersection(Vec<Ty>),
    /// `Name<A, B>`.
    Generic(String, Vec<Ty>),
}

/// A member of a union.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Member {
    pub(crate) ty: Ty,
    pub(crate) docs: Docs,
}

/// An object type: properties and an optional string index signature.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Object {
    pub(crate) properties: Vec<Property>,
    pub(crate) index: Option<Box<Ty>>,
}

/// A property of an object type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Property {
    /// The key as written (an identifier or a string literal).
    pub(crate) key: String,
    pub(crate) optional: bool,
    pub(crate) ty: Ty,
    pub(crate) docs: Docs,
}

pub(crate) const UNKNOWN: Ty = Ty::Keyword("unknown");
pub(crate) const NEVER: Ty = Ty::Keyword("never");

impl Ty {
    /// A union of `members`: nested unions flattened, `never` dropped,
    /// duplicates dropped, `unknown` absorbing all.
    pub(crate) fn union(members: Vec<Member>) -> Ty {
        let mut flat: Vec<Member> = Vec::new();
        for member in members {
            match member.ty {
                Ty::Union(inner) => {
                    for m in inner {
                        push_member(&mut flat, m);
                    }
                }
                ty => push_member(
                    &mut flat,
                    Member {
                        ty,
                        docs: member.docs,
                    },
                ),
            }
        }
        if flat.iter().any(|m| m.ty == UNKNOWN) {
            return UNKNOWN;
        }
        match flat.len() {
            0 => NEVER,
            1 if flat[0].docs.is_empty() => flat.pop().map(|m| m.ty).unwrap_or(NEVER),
            _ => Ty::Union(flat),
        }
    }

    /// A union of types without docs.
    pub(crate) fn union_of(types: Vec<Ty>) -> Ty {
        Ty::union(
            types
                .into_iter()
                .map(|ty| Member {
                    ty,
                    docs: Docs::default(),
                })
                .collect(),
        )
    }

    /// An intersection of `parts`: nested ones flattened, `unknown` dropped,
    /// duplicates dropped, `never` absorbing all.
    pub(crate) fn intersection(parts: Vec<Ty>) -> Ty {
        let mut flat: Vec<Ty> = Vec::new();
        for part in parts {
            let inner = match part {
                Ty::Intersection(inner) => inner,
                other => vec![other],
            };
            for ty in inner {
                if ty != UNKNOWN && !flat.contains(&ty) {
                    flat.push(ty);
                }
            }
        }
        if flat.contains(&NEVER) {
            return NEVER;
        }
        match flat.len() {
            0 => UNKNOWN,
            1 => flat.pop().unwrap_or(UNKNOWN),
            _ => Ty::Intersection(flat),
        }
    }

    /// The one-line rendering, or `None` when doc comments force line breaks.
    pub(crate) fn flat(&self) -> Option<String> {
        Some(match self {
            Ty::Keyword(k) => (*k).to_owned(),
            Ty::Named(n) | Ty::Literal(n) => n.clone(),
            Ty::Array(element) => {
                let inner = element.flat()?;
                if element.needs_parens_in_array() {
                    format!("({inner})[]")
                } else {
                    format!("{inner}[]")
                }
            }
            Ty::Tuple {
                elements,
                required,
                rest,
            } => {
                let mut items = Vec::new();
                for (i, e) in elements.iter().enumerate() {
                    let text = e.flat()?;
                    items.push(if i < *required {
                        text
                    } else if e.needs_parens_in_array() {
                        format!("({text})?")
                    } else {
                        format!("{text}?")
                    });
                }
                if let Some(rest) = rest {
                    items.push(format!("...{}", Ty::Array(rest.clone()).flat()?));
                }
                format!("[{}]", items.join(", "))
            }
            Ty::Object(object) => {
                if object.properties.iter().any(|p| !p.docs.is_empty()) {
                    return None;
                }
                let mut members = Vec::new();
                for p in &object.properties {
                    let q = if p.optional { "?" } else { "" };
                    members.push(format!("{}{q}: {}", p.key, p.ty.flat()?));
                }
                if let Some(index) = &object.index {
                    members.push(format!("[key: string]: {}", index.flat()?));
                }
                if members.is_empty() {
                    "{}".to_owned()
                } else {
                    format!("{{ {} }}", members.join("; "))
                }
            }
            Ty::Union(members) => {
                if members.iter().any(|m| !m.docs.is_empty()) {
                    return None;
                }
                let mut parts = Vec::new();
                for m in members {
                    parts.push(m.ty.flat()?);
                }
                parts.join(" | ")
            }
            Ty::Intersection(parts) => {
                let mut out = Vec::new();
                for p in parts {
                    let text = p.flat()?;
                    out.push(if matches!(p, Ty::Union(_)) {
                        format!("({text})")
                    } else {
                        text
                    });
                }
                out.join(" & ")
            }
            Ty::Generic(name, args) => {
                let mut out = Vec::new();
                for a in args {
                    out.push(a.flat()?);
                }
                format!("{name}<{}>", out.join(", "))
            }
        })
    }

    fn needs_parens_in_array(&self) -> bool {
        matches!(self, Ty::Union(_) | Ty::Intersection(_))
    }

    /// The rendering at a line indented by `indent` whose text starts at
    /// `column`; `reserve` columns are kept free after it (for `;` or `,`).
    /// A broken union starts with a line break, which callers check to put it
    /// right after `=` or `:`.
    pub(crate) fn print(&self, indent: usize, column: usize, reserve: usize) -> String {
        if let Some(flat) = self.flat()
            && column + flat.len() + reserve <= WIDTH
        {
            return flat;
        }
        match self {
            Ty::Keyword(_) | Ty::Named(_) | Ty::Literal(_) => self.flat().unwrap_or_default(),
            Ty::Array(element) => {
                if element.needs_parens_in_array() {
                    format!("({})[]", element.print_in_parens(indent, column + 1))
                } else {
                    format!("{}[]", element.print(indent, column, reserve + 2))
                }
            }
            Ty::Tuple {
                elements,
                required,
                rest,
            } => {
                let inner = indent + 2;
                let pad = " ".repeat(inner);
                let mut out = "[\n".to_owned();
                for (i, e) in elements.iter().enumerate() {
                    let mark = if i < *required { "" } else { "?" };
                    let text = if mark.is_empty() || !e.needs_parens_in_array() {
                        e.print(inner, inner, 2)
                    } else {
                        format!("({})", e.print_in_parens(inner, inner + 1))
                    };
                    out.push_str(&format!("{pad}{text}{mark},\n"));
                }
                if let Some(rest) = rest {
                    let text = Ty::Array(rest.clone()).print(inner, inner + 3, 1);
                    out.push_str(&format!("{pad}...{text},\n"));
                }
                out.push_str(&" ".repeat(indent));
                out.push(']');
                out
            }
            Ty::Object(object) => object.print_block(indent),
            Ty::Union(members) => {
                let pad = " ".repeat(indent + 2);
                let mut out = String::new();
                for m in members {
                    out.push('\n');
                    out.push_str(m.docs.jsdoc(indent + 2).trim_end_matches('\n'));
                    if !m.docs.is_empty() {
                        out.push('\n');
                    }
                    let text = if m.ty.needs_parens_in_array() {
                        format!("({})", m.ty.print_in_parens(indent + 4, indent + 5))
                    } else {
                        m.ty.print(indent + 4, indent + 4, reserve)
                    };
                    out.push_str(&format!("{pad}| {text}"));
                }
                out
            }
            Ty::Intersection(parts) => {
                let mut out = String::new();
                let mut col = column;
                for (i, p) in parts.iter().enumerate() {
                    if i > 0 {
                        out.push_str(" & ");
                        col += 3;
                    }
                    let text = if matches!(p, Ty::Union(_)) {
                        format!("({})", p.print_in_parens(indent, col + 1))
                    } else {
                        p.print(indent, col, reserve)
                    };
                    col = match text.rfind('\n') {
                        Some(i) => text.len() - i - 1,
                        None => col + text.len(),
                    };
                    out.push_str(&text);
                }
                out
            }
            // One argument hugs the brackets (`Promise<{` … `}>`); several go
            // one a line (type arguments take no trailing comma).
            Ty::Generic(name, args) if args.len() == 1 => {
                let arg = &args[0];
                let column = column + name.len() + 1;
                let text = arg.print(indent, column, reserve + 1);
                if text.starts_with('\n') {
                    // A broken union: its members on lines of their own.
                    format!("{name}<{text}\n{}>", " ".repeat(indent))
                } else {
                    format!("{name}<{text}>")
                }
            }
            Ty::Generic(name, args) => {
                let inner = indent + 2;
                let pad = " ".repeat(inner);
                let printed: Vec<String> = args
                    .iter()
                    .map(|a| format!("{pad}{}", a.print(inner, inner, 1)))
                    .collect();
                format!("{name}<\n{}\n{}>", printed.join(",\n"), " ".repeat(indent))
            }
        }
    }

    /// The inside of `( … )`: flat when it fits, else a broken union closed on
    /// its own line.
    fn print_in_parens(&self, indent: usize, column: usize) -> String {
        if let Some(flat) = self.flat()
            && column + flat.len() + 2 <= WIDTH
        {
            return flat;
        }
        match self {
            Ty::Union(_) => format!("{}\n{}", self.print(indent, column, 1), " ".repeat(indent)),
            _ => self.print(indent, column, 1),
        }
    }
}

fn push_member(flat: &mut Vec<Member>, member: Member) {
    if member.ty == NEVER {
        return;
    }
    if let Some(existing) = flat.iter_mut().find(|m| m.ty == member.ty) {
        if existing.docs.is_empty() {
            existing.docs = member.docs;
        }
        return;
    }
    flat.push(member);
}

impl Object {
    /// The body `{ … }` over lines: properties one a line at `indent + 2`, the
    /// closing brace at `indent`.
    pub(crate) fn print_block(&self, indent: usize) -> String {
        let inner = indent + 2;
        let pad = " ".repeat(inner);
        let mut out = "{\n".to_owned();
        for p in &self.properties {
            out.push_str(&p.docs.jsdoc(inner));
            let head = format!("{}{}:", p.key, if p.optional { "?" } else { "" });
            let ty = p.ty.print(inner, inner + head.len() + 1, 1);
            let sep = if ty.starts_with('\n') { "" } else { " " };
            out.push_str(&format!("{pad}{head}{sep}{ty};\n"));
        }
        if let Some(index) = &self.index {
            let head = "[key: string]:";
            let ty = index.print(inner, inner + head.len() + 1, 1);
            let sep = if ty.starts_with('\n') { "" } else { " " };
            out.push_str(&format!("{pad}{head}{sep}{ty};\n"));
        }
        out.push_str(&" ".repeat(indent));
        out.push('}');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prop(key: &str, ty: Ty) -> Property {
        Property {
            key: key.to_owned(),
            optional: false,
            ty,
            docs: Docs::default(),
        }
    }

    #[test]
    fn unions_normalize() {
        let s = Ty::Keyword("string");
        assert_eq!(Ty::union_of(vec![s.clone(), s.clone()]), s);
        assert_eq!(Ty::union_of(vec![s.clone(), UNKNOWN]), UNKNOWN);
        assert_eq!(Ty::union_of(vec![NEVER]), NEVER);
        let nested = Ty::union_of(vec![
            Ty::union_of(vec![s.clone(), Ty::Keyword("null")]),
            Ty::Keyword("number"),
        ]);
        assert_eq!(nested.flat().unwrap(), "string | null | number");
        assert_eq!(Ty::intersection(vec![UNKNOWN, s.clone()]), s);
    }

    #[test]
    fn flat_forms() {
        let u = Ty::union_of(vec![Ty::Keyword("string"), Ty::Keyword("null")]);
        assert_eq!(
            Ty::Array(Box::new(u.clone())).flat().unwrap(),
            "(string | null)[]"
        );
        let t = Ty::Tuple {
            elements: vec![Ty::Keyword("number"), u.clone()],
            required: 1,
            rest: Some(Box::new(Ty::Keyword("boolean"))),
        };
        assert_eq!(
            t.flat().unwrap(),
            "[number, (string | null)?, ...boolean[]]"
        );
        let o = Ty::Object(Object {
            properties: vec![prop("a", Ty::Keyword("number"))],
            index: None,
        });
        assert_eq!(
            Ty::intersection(vec![o, u]).flat().unwrap(),
            "{ a: number } & (string | null)"
        );
    }

    #[test]
    fn long_unions_break_like_prettier() {
        let members: Vec<Ty> = (0..4)
            .map(|i| {
                Ty::Object(Object {
                    properties: vec![
                        prop("kind", Ty::Literal(format!("\"variant{i}\""))),
                        prop("value", Ty::Keyword("number")),
                    ],
                    index: None,
                })
            })
            .collect();
        let printed = Ty::union_of(members).print(0, 10, 1);
        assert!(printed.starts_with("\n  | { kind: \"variant0\"; value: number }"));
        assert_eq!(printed.lines().count(), 5);
    }

    #[test]
    fn jsdoc_escapes_and_wraps() {
        assert_eq!(Docs::new("One line.").jsdoc(2), "  /** One line. */\n");
        let docs = Docs {
            text: "First.\n\nEnds a */ comment.".to_owned(),
            deprecated: true,
        };
        assert_eq!(
            docs.jsdoc(0),
            "/**\n * First.\n *\n * Ends a *\\/ comment.\n * @deprecated\n */\n"
        );
    }
}
