//! Name and value rules of API.md, hand-written (a regex engine would double the size of
//! every component). Each function documents the pattern it implements.

/// `^([^@\s]+)@((?:[-a-z0-9]+\.)+[a-z]{2,})$` (API.md 3.7).
pub fn is_email(value: &str) -> bool {
    let Some((local, domain)) = value.split_once('@') else {
        return false;
    };
    if local.is_empty() || local.chars().any(char::is_whitespace) {
        return false;
    }
    let labels: Vec<&str> = domain.split('.').collect();
    let Some((tld, rest)) = labels.split_last() else {
        return false;
    };
    !rest.is_empty()
        && rest.iter().all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b == b'-' || b.is_ascii_lowercase() || b.is_ascii_digit())
        })
        && tld.len() >= 2
        && tld.bytes().all(|b| b.is_ascii_lowercase())
}

/// Passwords are 6 to 50 bytes (API.md 3.7).
pub fn is_valid_password(value: &str) -> bool {
    (6..=50).contains(&value.len())
}

pub const PASSWORD_MESSAGE: &str =
    "Password length should be least 6 characters and at most 50 characters.";

/// `^[a-zA-Z][-@_.+\w\s]+$` with ASCII `\w` (API.md 3.8), on the trimmed name.
pub fn is_team_name(value: &str) -> bool {
    let mut chars = value.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    let rest = chars.as_str();
    first.is_ascii_alphabetic()
        && !rest.is_empty()
        && rest.chars().all(|c| {
            c.is_ascii_alphanumeric()
                || matches!(c, '-' | '@' | '_' | '.' | '+')
                || c.is_whitespace()
        })
}

/// Team names that a route literal would shadow (API.md 7.9).
pub fn is_shadowed_team_name(value: &str) -> bool {
    matches!(value, "units" | "env" | "cname" | "doc")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        for ok in ["a@b.com", "x.y+z@mail.example.org", "a_b@x-y.co"] {
            assert!(is_email(ok), "{ok}");
        }
        for bad in [
            "",
            "a",
            "a@b",
            "a@B.com",
            "a b@c.com",
            "@b.com",
            "a@b.c",
            "a@.com",
            "a@b.c0m",
            "a@b@c.com",
        ] {
            assert!(!is_email(bad), "{bad}");
        }
    }

    #[test]
    fn passwords() {
        assert!(!is_valid_password("12345"));
        assert!(is_valid_password("123456"));
        assert!(is_valid_password(&"x".repeat(50)));
        assert!(!is_valid_password(&"x".repeat(51)));
    }

    #[test]
    fn team_names() {
        for ok in ["backend", "my team", "a1", "ops@corp.com", "x-y_z.w+v"] {
            assert!(is_team_name(ok), "{ok}");
        }
        for bad in ["", "a", "1team", "-x", "team!", "tëam"] {
            assert!(!is_team_name(bad), "{bad}");
        }
    }
}
