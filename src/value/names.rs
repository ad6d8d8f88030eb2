//! Name spellings: WIT is kebab-case, Rust fields snake_case, Rust enum cases PascalCase.

/// `shape-rect` -> `shape_rect`.
pub fn snake(kebab: &str) -> String {
    kebab.replace('-', "_")
}

/// `shape-rect` -> `ShapeRect`.
pub fn pascal(kebab: &str) -> String {
    kebab
        .split('-')
        .map(|w| {
            let mut c = w.chars();
            c.next().map(|f| f.to_uppercase().chain(c).collect::<String>()).unwrap_or_default()
        })
        .collect()
}

/// Two names JSON cannot tell apart (input accepts kebab-case, snake_case
/// and PascalCase alike), if `names` holds such a pair.
pub fn indistinct<'a>(names: impl IntoIterator<Item = &'a str>) -> Option<(&'a str, &'a str)> {
    let folded = |n: &str| n.bytes().filter(|b| *b != b'-' && *b != b'_').map(|b| b.to_ascii_lowercase()).collect::<Vec<u8>>();
    let mut seen: Vec<(Vec<u8>, &str)> = Vec::new();
    for name in names {
        let key = folded(name);
        if let Some((_, earlier)) = seen.iter().find(|(k, _)| *k == key) {
            return Some((earlier, name));
        }
        seen.push((key, name));
    }
    None
}

/// PascalCase, snake_case or kebab-case -> kebab-case.
pub fn kebab(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_uppercase() {
            if i > 0 && !out.ends_with('-') {
                out.push('-');
            }
            out.extend(c.to_lowercase());
        } else if c == '_' {
            out.push('-');
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_names() {
        assert_eq!(kebab("ShapeRect"), "shape-rect");
        assert_eq!(kebab("shape_rect"), "shape-rect");
        assert_eq!(kebab("shape-rect"), "shape-rect");
        assert_eq!(pascal("shape-rect"), "ShapeRect");
        assert_eq!(snake("count-words"), "count_words");
    }
}
