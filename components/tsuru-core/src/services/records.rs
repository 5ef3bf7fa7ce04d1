//! Service and instance records and the checks of API.md 1.8 (service owner, service
//! use, instance), which every service, instance and binding route runs first.

use crate::params;
use crate::runtime::caller::User;
use crate::runtime::db::{Db, Row};
use crate::runtime::error::{ApiError, ApiResult};
use serde::Serialize;

pub const NOT_FOUND: &str = "Service not found";
pub const NO_ACCESS: &str = "This user does not have access to this service";

/// A stored service, as the checks need it, with the caller's relation to it.
pub struct Service {
    pub id: i64,
    pub name: String,
    pub restricted: bool,
    /// The caller is in one of its owner teams.
    pub owned: bool,
    /// The caller is in one of the teams it is granted to.
    pub granted: bool,
}

impl Service {
    /// Whether the caller may use the service: unrestricted, or granted to one of its teams.
    pub fn usable(&self) -> bool {
        !self.restricted || self.granted
    }
}

/// Loads service `name` with the caller's relation to it, in one statement (`404
/// Service not found`). Inside a transaction, what it read holds until the commit.
pub fn find(db: &Db, name: &str, user: &User) -> ApiResult<Service> {
    let row = db.query_opt(
        "SELECT s.id, s.restricted, \
         EXISTS (SELECT 1 FROM service_owner_teams o JOIN team_members m ON m.team_id = o.team_id \
          WHERE o.service_id = s.id AND m.user_id = ?2), \
         EXISTS (SELECT 1 FROM service_teams g JOIN team_members m ON m.team_id = g.team_id \
          WHERE g.service_id = s.id AND m.user_id = ?2) \
         FROM services s WHERE s.name = ?1",
        params![name, user.id],
    )?;
    let row = row.ok_or_else(|| ApiError::not_found(NOT_FOUND))?;
    Ok(Service {
        id: row.int(0),
        name: name.to_string(),
        restricted: row.bool(1),
        owned: row.bool(2),
        granted: row.bool(3),
    })
}

/// Service owner check (API.md 1.8): 404, or 403 for a caller in no owner team.
pub fn load_owned(db: &Db, name: &str, user: &User) -> ApiResult<Service> {
    let service = find(db, name, user)?;
    if !service.owned {
        return Err(ApiError::forbidden(NO_ACCESS));
    }
    Ok(service)
}

/// Service use check (API.md 1.8): 404, or 403 for a restricted service not granted to
/// one of the caller's teams.
pub fn load_usable(db: &Db, name: &str, user: &User) -> ApiResult<Service> {
    let service = find(db, name, user)?;
    if !service.usable() {
        return Err(ApiError::forbidden(NO_ACCESS));
    }
    Ok(service)
}

/// Instance creation's service checks (API.md 3.3 checks 2-3; 404 for both).
pub fn load_for_new_instance(db: &Db, name: &str, user: &User) -> ApiResult<Service> {
    let service = find(db, name, user)?;
    if !service.usable() {
        return Err(ApiError::not_found(NO_ACCESS));
    }
    Ok(service)
}

/// One entry of the service lists: a service id and instance names, sorted.
#[derive(Serialize)]
pub struct ServiceInstances {
    pub service: String,
    pub instances: Vec<String>,
}

/// Groups `(service, instance or NULL)` rows, sorted by service then instance.
pub fn group_instances(rows: &[Row]) -> Vec<ServiceInstances> {
    let mut groups: Vec<ServiceInstances> = Vec::new();
    for row in rows {
        let service = row.text(0);
        if groups.last().is_none_or(|g| g.service != service) {
            groups.push(ServiceInstances {
                service,
                instances: Vec::new(),
            });
        }
        if let (Some(instance), Some(group)) = (row.opt_text(1), groups.last_mut()) {
            group.instances.push(instance);
        }
    }
    groups
}

/// A ready instance the caller passed the instance check for, with its teams and bound
/// apps (both sorted). Instances still being created (`pending`) or removed
/// (`removing`) are found by no route (API.md 3.3).
pub struct Instance {
    pub id: i64,
    pub name: String,
    pub service_id: i64,
    pub service: String,
    pub teams: Vec<String>,
    pub apps: Vec<String>,
}

/// Instance check (API.md 1.8): 404, or 403 for a caller in none of its teams; one
/// statement.
pub fn load_instance(db: &Db, name: &str, user: &User) -> ApiResult<Instance> {
    let row = db.query_opt(
        "SELECT i.id, i.service_id, s.name, \
         EXISTS (SELECT 1 FROM instance_teams x JOIN team_members m ON m.team_id = x.team_id \
          WHERE x.instance_id = i.id AND m.user_id = ?2), \
         (SELECT json_group_array(t.name) FROM instance_teams x JOIN teams t ON t.id = x.team_id \
          WHERE x.instance_id = i.id), \
         (SELECT json_group_array(a.name) FROM instance_apps b JOIN apps a ON a.id = b.app_id \
          WHERE b.instance_id = i.id) \
         FROM service_instances i JOIN services s ON s.id = i.service_id \
         WHERE i.name = ?1 AND i.state = 'ready'",
        params![name, user.id],
    )?;
    let row = row.ok_or_else(|| ApiError::not_found("Service instance not found"))?;
    if !row.bool(3) {
        return Err(ApiError::forbidden(
            "User does not have access to this service instance",
        ));
    }
    let sorted = |column: usize| {
        let mut names: Vec<String> = serde_json::from_str(&row.text(column)).unwrap_or_default();
        names.sort();
        names
    };
    Ok(Instance {
        id: row.int(0),
        name: name.to_string(),
        service_id: row.int(1),
        service: row.text(2),
        teams: sorted(4),
        apps: sorted(5),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn grouping_keeps_services_without_instances() {
        use crate::runtime::db::Value;
        let row = |s: &str, i: Option<&str>| Row(vec![Value::from(s), Value::from(i)]);
        let groups = group_instances(&[row("a", None), row("b", Some("b1")), row("b", Some("b2"))]);
        let json = serde_json::to_value(&groups).unwrap();
        assert_eq!(
            json,
            json!([{"service":"a","instances":[]},{"service":"b","instances":["b1","b2"]}])
        );
    }
}
