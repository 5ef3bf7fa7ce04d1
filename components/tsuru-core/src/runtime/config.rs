//! Spin variables (API.md 1.7), parsed on use: a route reads only what it needs, and an
//! unparseable value answers `500 Invalid value for variable "<name>"` on that route alone.

use crate::runtime::error::{ApiError, ApiResult};

/// Where variable values come from: Spin's variables in the components, a map in tests.
pub type VariableSource = Box<dyn Fn(&str) -> Option<String>>;

pub struct Config {
    source: VariableSource,
}

impl Config {
    pub fn new(source: VariableSource) -> Self {
        Config { source }
    }

    /// The trimmed value; `""` when unset or not declared for this component.
    pub fn raw(&self, name: &str) -> String {
        (self.source)(name)
            .map(|v| v.trim().to_string())
            .unwrap_or_default()
    }

    fn optional(&self, name: &str) -> Option<String> {
        Some(self.raw(name)).filter(|v| !v.is_empty())
    }

    /// The admin team's name; `None` when admin features are disabled.
    pub fn admin_team(&self) -> Option<String> {
        self.optional("admin_team")
    }

    pub fn admin_email(&self) -> Option<String> {
        self.optional("admin_email")
    }

    pub fn user_registration(&self) -> ApiResult<bool> {
        match self.raw("user_registration").to_ascii_lowercase().as_str() {
            "" | "true" | "1" => Ok(true),
            "false" | "0" => Ok(false),
            _ => Err(ApiError::invalid_variable("user_registration")),
        }
    }

    pub fn token_expire_days(&self) -> ApiResult<i64> {
        let raw = self.raw("token_expire_days");
        if raw.is_empty() {
            return Ok(7);
        }
        match raw.parse::<i64>() {
            Ok(days) if (1..=3650).contains(&days) => Ok(days),
            _ => Err(ApiError::invalid_variable("token_expire_days")),
        }
    }

    pub fn git_host(&self) -> String {
        self.optional("git_host")
            .unwrap_or_else(|| "localhost".to_string())
    }

    pub fn gandalf_url(&self) -> Option<String> {
        self.optional("gandalf_url")
    }

    pub fn provisioner_url(&self) -> Option<String> {
        self.optional("provisioner_url")
    }

    pub fn provisioner_token(&self) -> Option<String> {
        self.optional("provisioner_token")
    }

    pub fn mailer_url(&self) -> Option<String> {
        self.optional("mailer_url")
    }

    pub fn tsuru_host(&self) -> Option<String> {
        self.optional("tsuru_host")
    }

    /// `name=url,name=url`, in variable order.
    pub fn healers(&self) -> ApiResult<Vec<(String, String)>> {
        let mut healers = Vec::new();
        for item in self.raw("healers").split(',') {
            let item = item.trim();
            if item.is_empty() {
                continue;
            }
            match item.split_once('=') {
                Some((name, url)) if !name.trim().is_empty() && !url.trim().is_empty() => {
                    healers.push((name.trim().to_string(), url.trim().to_string()))
                }
                _ => return Err(ApiError::invalid_variable("healers")),
            }
        }
        Ok(healers)
    }

    pub fn platforms(&self) -> Vec<String> {
        parse_platforms(&self.raw("platforms"))
    }

    /// `log_retention`: log entries kept per app, 100..=1000000; empty means 10000.
    pub fn log_retention(&self) -> ApiResult<i64> {
        let raw = self.raw("log_retention");
        if raw.is_empty() {
            return Ok(10_000);
        }
        match raw.parse::<i64>() {
            Ok(n) if (100..=1_000_000).contains(&n) => Ok(n),
            _ => Err(ApiError::invalid_variable("log_retention")),
        }
    }

    /// `audit_retention_days`: days an audit event is kept, 1..=36500; empty means
    /// forever (API.md 4.1: the trail is append-only unless the operator says otherwise).
    pub fn audit_retention_days(&self) -> ApiResult<Option<i64>> {
        match self.optional("audit_retention_days") {
            None => Ok(None),
            Some(v) => match v.parse::<i64>() {
                Ok(n) if (1..=36_500).contains(&n) => Ok(Some(n)),
                _ => Err(ApiError::invalid_variable("audit_retention_days")),
            },
        }
    }

    /// `service_hosts`: the host patterns service endpoints may name (API.md 8.3), lower
    /// case; empty means any host. A pattern is a host name, or `*.` and a domain.
    pub fn service_hosts(&self) -> ApiResult<Vec<String>> {
        let mut patterns = Vec::new();
        for item in self.raw("service_hosts").split(',') {
            let item = item.trim().to_ascii_lowercase();
            if item.is_empty() {
                continue;
            }
            let host = item.strip_prefix("*.").unwrap_or(&item);
            let valid = !host.is_empty()
                && !host.contains('*')
                && host.bytes().all(|b| {
                    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b':' | b'[' | b']')
                });
            if !valid {
                return Err(ApiError::invalid_variable("service_hosts"));
            }
            patterns.push(item);
        }
        Ok(patterns)
    }

    pub fn quota_apps_per_user(&self) -> ApiResult<Option<i64>> {
        self.optional_count("quota_apps_per_user")
    }

    pub fn quota_units_per_app(&self) -> ApiResult<Option<i64>> {
        self.optional_count("quota_units_per_app")
    }

    fn optional_count(&self, name: &str) -> ApiResult<Option<i64>> {
        match self.optional(name) {
            None => Ok(None),
            Some(v) => match v.parse::<u32>() {
                Ok(n) => Ok(Some(i64::from(n))),
                Err(_) => Err(ApiError::invalid_variable(name)),
            },
        }
    }
}

/// `platforms`: comma-separated names, spaces and empty items ignored.
pub fn parse_platforms(raw: &str) -> Vec<String> {
    raw.split(',')
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect()
}

#[cfg(test)]
pub fn test_config(vars: &[(&str, &str)]) -> Config {
    let map: std::collections::HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Config::new(Box::new(move |name| map.get(name).cloned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_when_empty() {
        let c = test_config(&[]);
        assert!(c.user_registration().unwrap());
        assert_eq!(c.token_expire_days().unwrap(), 7);
        assert_eq!(c.git_host(), "localhost");
        assert_eq!(c.admin_team(), None);
        assert_eq!(c.quota_apps_per_user().unwrap(), None);
        assert!(c.healers().unwrap().is_empty());
        assert_eq!(c.log_retention().unwrap(), 10_000);
        assert!(c.service_hosts().unwrap().is_empty());
    }

    #[test]
    fn parses_values() {
        let c = test_config(&[
            ("user_registration", "FALSE"),
            ("token_expire_days", "30"),
            ("healers", " a=http://x/1 , ,b=http://y/2"),
            ("platforms", "python, go,,"),
            ("quota_units_per_app", "0"),
            ("log_retention", "100"),
            ("service_hosts", " *.Internal , mysql-api.example.com,"),
        ]);
        assert!(!c.user_registration().unwrap());
        assert_eq!(c.token_expire_days().unwrap(), 30);
        assert_eq!(
            c.healers().unwrap(),
            vec![
                ("a".to_string(), "http://x/1".to_string()),
                ("b".to_string(), "http://y/2".to_string())
            ]
        );
        assert_eq!(c.platforms(), vec!["python", "go"]);
        assert_eq!(c.quota_units_per_app().unwrap(), Some(0));
        assert_eq!(c.log_retention().unwrap(), 100);
        assert_eq!(
            c.service_hosts().unwrap(),
            vec!["*.internal", "mysql-api.example.com"]
        );
    }

    #[test]
    fn invalid_values_name_the_variable() {
        let c = test_config(&[
            ("user_registration", "maybe"),
            ("token_expire_days", "0"),
            ("quota_apps_per_user", "-1"),
            ("healers", "noequals"),
            ("log_retention", "99"),
            ("service_hosts", "a.*.b"),
        ]);
        assert_eq!(
            c.user_registration().unwrap_err().message,
            "Invalid value for variable \"user_registration\""
        );
        assert_eq!(c.token_expire_days().unwrap_err().status, 500);
        assert!(c.quota_apps_per_user().is_err());
        assert!(c.healers().is_err());
        assert!(c.log_retention().is_err());
        assert!(c.service_hosts().is_err());
    }
}
