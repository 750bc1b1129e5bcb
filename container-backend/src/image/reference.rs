//! Image references as users type them: `name[:tag]`, where the name may have `/`-separated
//! parts (`library/busybox`). The tag defaults to `latest`.

use std::fmt;

/// A parsed, validated image reference.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Reference {
    pub name: String,
    pub tag: String,
}

impl Reference {
    /// Parse `name[:tag]`. Names are lowercase letters, digits and `._-/` (as registries
    /// require); tags are letters, digits and `._-`, at most 128 characters.
    pub fn parse(text: &str) -> Result<Reference, String> {
        let (name, tag) = match text.rsplit_once(':') {
            // A colon inside the last path component is a tag; before a '/' it is a registry
            // port, which references in this store do not have.
            Some((name, tag)) if !tag.contains('/') => (name, tag),
            _ => (text, "latest"),
        };
        // A first component with a dot or a port, or `localhost`, is a registry's host
        // (`127.0.0.1:5000/busybox`), as Docker reads names.
        let (host, path) = match name.split_once('/') {
            Some((first, path)) if first.contains(['.', ':']) || first == "localhost" => {
                (Some(first), path)
            }
            _ => (None, name),
        };
        let host_ok = host.is_none_or(|h| {
            let (domain, port) = h.split_once(':').unwrap_or((h, "0"));
            // Dot-separated labels of letters, digits and inner hyphens (no `..`).
            domain.split('.').all(|label| {
                !label.is_empty()
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            }) && port.parse::<u16>().is_ok()
        });
        let name_ok = !name.is_empty()
            && name.len() <= 255
            && host_ok
            && path.split('/').all(|part| {
                !part.is_empty()
                    && part.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
                    && part
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
            });
        if !name_ok {
            return Err(format!(
                "`{text}` is not an image name: use lowercase letters, digits, `.`, `_`, `-` and `/`, optionally followed by `:tag`"
            ));
        }
        let tag_ok = !tag.is_empty()
            && tag.len() <= 128
            && tag.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
            && tag
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
        if !tag_ok {
            return Err(format!("`{tag}` is not a valid tag in `{text}`"));
        }
        Ok(Reference {
            name: name.to_owned(),
            tag: tag.to_owned(),
        })
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.name, self.tag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_and_tags() {
        assert_eq!(
            Reference::parse("busybox").unwrap().to_string(),
            "busybox:latest"
        );
        assert_eq!(
            Reference::parse("library/app:1.2-rc_3")
                .unwrap()
                .to_string(),
            "library/app:1.2-rc_3"
        );
        assert!(Reference::parse("Busybox").is_err());
        assert!(Reference::parse("a//b").is_err());
        assert!(Reference::parse("x:").is_err());
        assert!(Reference::parse("x:-bad").is_err());
        assert!(Reference::parse("../etc").is_err());
        assert!(Reference::parse("").is_err());
        assert_eq!(
            Reference::parse("127.0.0.1:5000/team/app:1").unwrap().name,
            "127.0.0.1:5000/team/app"
        );
        assert_eq!(
            Reference::parse("localhost:5000/app").unwrap().to_string(),
            "localhost:5000/app:latest"
        );
        assert!(Reference::parse("host:port/app").is_err());
        assert!(Reference::parse("../etc").is_err());
        assert!(Reference::parse("a..b/c").is_err());
    }
}
