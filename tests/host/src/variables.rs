//! Application and component variables, resolved the way Spin resolves them.
//!
//! Value of an application variable, first found wins: an explicit override from the
//! host configuration, then `SPIN_VARIABLE_<NAME>` (name upper-cased) from the process
//! environment, then the manifest `default`. A `required` variable with no value stops
//! the host at startup. A component sees only the names declared under
//! `[component.<id>.variables]`; each is a template such as `"{{ admin_team }}"`.

use std::collections::{BTreeMap, HashMap};

use anyhow::{bail, Result};

/// Checks a variable name against Spin's rules: lower-case ASCII letters, digits and
/// single underscores, starting with a letter and ending with a letter or digit.
pub fn validate_name(name: &str) -> std::result::Result<(), String> {
    let Some(first) = name.bytes().next() else {
        return Err("must not be empty".into());
    };
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_'))
    {
        return Err(format!(
            "invalid character {bad:?}; names may contain only lower-case letters, digits and underscores"
        ));
    }
    if !first.is_ascii_lowercase() {
        return Err("must start with a lower-case ASCII letter".into());
    }
    if !name
        .bytes()
        .last()
        .is_some_and(|b| b.is_ascii_alphanumeric())
    {
        return Err("must end with a lower-case ASCII letter or a digit".into());
    }
    if name.contains("__") {
        return Err("must not contain two underscores in a row".into());
    }
    Ok(())
}

/// One piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    Literal(String),
    Variable(String),
}

/// A string with `{{ name }}` references to application variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub parts: Vec<Part>,
}

impl Template {
    pub fn parse(text: &str) -> Result<Self> {
        let mut parts = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            match rest.find("{{") {
                Some(0) => {
                    let Some(end) = rest.find("}}") else {
                        bail!("unmatched '{{{{' in template {text:?}");
                    };
                    parts.push(Part::Variable(rest[2..end].trim().to_string()));
                    rest = &rest[end + 2..];
                }
                Some(i) => {
                    parts.push(Part::Literal(rest[..i].to_string()));
                    rest = &rest[i..];
                }
                None => {
                    parts.push(Part::Literal(rest.to_string()));
                    rest = "";
                }
            }
        }
        Ok(Self { parts })
    }

    pub fn is_literal(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Literal(_)))
    }

    /// Names the template refers to.
    pub fn variables(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Variable(v) => Some(v.as_str()),
            Part::Literal(_) => None,
        })
    }

    /// Fills the template from `values`; `None` when a referenced name has no value.
    pub fn render(&self, values: &HashMap<String, String>) -> Option<String> {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Literal(l) => out.push_str(l),
                Part::Variable(v) => out.push_str(values.get(v)?),
            }
        }
        Some(out)
    }
}

/// Declaration of one application variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppVariable {
    pub default: Option<String>,
    pub required: bool,
    pub secret: bool,
}

impl AppVariable {
    /// An optional variable with a default value.
    pub fn with_default(value: impl Into<String>) -> Self {
        Self {
            default: Some(value.into()),
            required: false,
            secret: false,
        }
    }

    /// A variable that must be given a value when the host starts.
    pub fn required() -> Self {
        Self {
            default: None,
            required: true,
            secret: false,
        }
    }
}

/// Computes every application variable's value.
///
/// `env` is looked up with `SPIN_VARIABLE_<NAME>`; `overrides` win over it. An override
/// naming an undeclared variable is an error (it would otherwise hide a typo in a test).
pub fn resolve_app_variables(
    declared: &BTreeMap<String, AppVariable>,
    overrides: &HashMap<String, String>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<HashMap<String, String>> {
    for name in overrides.keys() {
        if !declared.contains_key(name) {
            bail!("variable override {name:?} names no declared application variable");
        }
    }
    let mut values = HashMap::new();
    let mut missing = Vec::new();
    for (name, decl) in declared {
        let value = overrides
            .get(name)
            .cloned()
            .or_else(|| env(&format!("SPIN_VARIABLE_{}", name.to_ascii_uppercase())))
            .or_else(|| decl.default.clone());
        match value {
            Some(v) => {
                values.insert(name.clone(), v);
            }
            None => missing.push(name.clone()),
        }
    }
    if !missing.is_empty() {
        bail!("no provider resolved required variable(s): {missing:?}");
    }
    Ok(values)
}

/// Why a component's `variables.get` failed, mirroring the WIT error cases.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GetError {
    InvalidName(String),
    Undefined(String),
}

/// The variables one component may read, already resolved.
#[derive(Debug, Clone, Default)]
pub struct ComponentVariables {
    pub component_id: String,
    pub values: HashMap<String, String>,
}

impl ComponentVariables {
    /// Parses and checks a component's templates, then resolves them.
    pub fn build(
        component_id: &str,
        templates: &BTreeMap<String, String>,
        declared: &BTreeMap<String, AppVariable>,
        app_values: &HashMap<String, String>,
    ) -> Result<Self> {
        let mut values = HashMap::new();
        for (name, text) in templates {
            validate_name(name).map_err(|e| {
                anyhow::anyhow!("component {component_id:?} variable {name:?}: {e}")
            })?;
            let template = Template::parse(text)?;
            for var in template.variables() {
                if !declared.contains_key(var) {
                    bail!(
                        "component {component_id:?} variable {name:?}: template refers to unknown variable {var:?}"
                    );
                }
            }
            let Some(value) = template.render(app_values) else {
                bail!("component {component_id:?} variable {name:?} cannot be resolved");
            };
            values.insert(name.clone(), value);
        }
        Ok(Self {
            component_id: component_id.to_string(),
            values,
        })
    }

    /// What `fermyon:spin/variables.get` answers.
    pub fn get(&self, name: &str) -> std::result::Result<String, GetError> {
        validate_name(name).map_err(|e| GetError::InvalidName(format!("{name:?}: {e}")))?;
        self.values.get(name).cloned().ok_or_else(|| {
            GetError::Undefined(format!("no variable for {:?}.{name:?}", self.component_id))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_spin_rules() {
        for good in ["a", "admin_team", "x1", "a_b_c"] {
            assert!(validate_name(good).is_ok(), "{good}");
        }
        for bad in ["", "Admin", "1a", "a-b", "a__b", "a_", "_a"] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn templates_parse_and_render() {
        let t = Template::parse("http://{{ host }}:{{port}}/x").unwrap();
        assert_eq!(
            t.parts,
            vec![
                Part::Literal("http://".into()),
                Part::Variable("host".into()),
                Part::Literal(":".into()),
                Part::Variable("port".into()),
                Part::Literal("/x".into()),
            ]
        );
        let values = HashMap::from([
            ("host".to_string(), "h".to_string()),
            ("port".to_string(), "1".to_string()),
        ]);
        assert_eq!(t.render(&values).unwrap(), "http://h:1/x");
        assert!(Template::parse("{{ open").is_err());
        assert!(Template::parse("plain").unwrap().is_literal());
    }

    #[test]
    fn override_beats_env_beats_default() {
        let declared = BTreeMap::from([
            ("a".to_string(), AppVariable::with_default("da")),
            ("b".to_string(), AppVariable::with_default("db")),
            ("c".to_string(), AppVariable::with_default("dc")),
        ]);
        let env = |k: &str| match k {
            "SPIN_VARIABLE_A" | "SPIN_VARIABLE_B" => Some(format!("env-{k}")),
            _ => None,
        };
        let overrides = HashMap::from([("a".to_string(), "explicit".to_string())]);
        let v = resolve_app_variables(&declared, &overrides, &env).unwrap();
        assert_eq!(v["a"], "explicit");
        assert_eq!(v["b"], "env-SPIN_VARIABLE_B");
        assert_eq!(v["c"], "dc");
    }

    #[test]
    fn required_without_value_fails() {
        let declared = BTreeMap::from([("secret_key".to_string(), AppVariable::required())]);
        let err = resolve_app_variables(&declared, &HashMap::new(), &|_| None).unwrap_err();
        assert!(err.to_string().contains("secret_key"));
        let v = resolve_app_variables(&declared, &HashMap::new(), &|_| Some("x".into())).unwrap();
        assert_eq!(v["secret_key"], "x");
    }

    #[test]
    fn undeclared_override_fails() {
        let err = resolve_app_variables(
            &BTreeMap::new(),
            &HashMap::from([("nope".to_string(), "x".to_string())]),
            &|_| None,
        )
        .unwrap_err();
        assert!(err.to_string().contains("nope"));
    }

    #[test]
    fn component_sees_only_its_own_names() {
        let declared =
            BTreeMap::from([("admin_team".to_string(), AppVariable::with_default("admin"))]);
        let values = HashMap::from([("admin_team".to_string(), "ops".to_string())]);
        let templates = BTreeMap::from([("team".to_string(), "team-{{ admin_team }}".to_string())]);
        let cv = ComponentVariables::build("apps", &templates, &declared, &values).unwrap();
        assert_eq!(cv.get("team").unwrap(), "team-ops");
        assert!(matches!(cv.get("admin_team"), Err(GetError::Undefined(_))));
        assert!(matches!(cv.get("Bad-Name"), Err(GetError::InvalidName(_))));

        let unknown = BTreeMap::from([("x".to_string(), "{{ nope }}".to_string())]);
        assert!(ComponentVariables::build("apps", &unknown, &declared, &values).is_err());
    }
}
