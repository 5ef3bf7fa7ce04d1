//! Service and instance records and the checks of API.md 1.8 (service owner, service
//! use, instance), which every service, instance and binding route runs first.

use crate::params;
use crate::runtime::caller::User;
use crate::runtime::db::{Db, Row};
use crate::runtime::error::{ApiError, ApiResult};
use serde::Serialize;

pub const NOT_FOUND: &str = "Service not found";
pub const NO_ACCESS: &str = "This user does not have access to this service";

/// Whether the user is a member of one of the service's owner teams.
pub const IS_OWNER: &str =
    "SELECT 1 FROM service_owner_teams s JOIN team_members m ON m.team = s.team \
                        WHERE s.service = ? AND m.email = ?";
/// Whether the user is a member of one of the teams the service is granted to.
pub const IS_GRANTED: &str =
    "SELECT 1 FROM service_teams s JOIN team_members m ON m.team = s.team \
                          WHERE s.service = ? AND m.email = ?";

/// A stored service, as the checks need it.
pub struct Service {
    pub id: String,
    pub restricted: bool,
}

pub fn find(db: &Db, id: &str) -> ApiResult<Service> {
    let row = db.query_opt("SELECT restricted FROM services WHERE id = ?", params![id])?;
    let row = row.ok_or_else(|| ApiError::not_found(NOT_FOUND))?;
    Ok(Service {
        id: id.to_string(),
        restricted: row.bool(0),
    })
}

pub fn user_matches(db: &Db, sql: &str, service: &str, user: &User) -> ApiResult<bool> {
    Ok(db.exists(sql, params![service, user.email.as_str()])?)
}

/// Whether `user` may use the service: unrestricted, or granted to one of the user's teams.
pub fn may_use(db: &Db, service: &Service, user: &User) -> ApiResult<bool> {
    Ok(!service.restricted || user_matches(db, IS_GRANTED, &service.id, user)?)
}

/// Service owner check (API.md 1.8): 404, or 403 for a caller in no owner team.
pub fn load_owned(db: &Db, id: &str, user: &User) -> ApiResult<Service> {
    let service = find(db, id)?;
    if !user_matches(db, IS_OWNER, id, user)? {
        return Err(ApiError::forbidden(NO_ACCESS));
    }
    Ok(service)
}

/// Service use check (API.md 1.8): 404, or 403 for a restricted service not granted to
/// one of the caller's teams.
pub fn load_usable(db: &Db, id: &str, user: &User) -> ApiResult<Service> {
    let service = find(db, id)?;
    if !may_use(db, &service, user)? {
        return Err(ApiError::forbidden(NO_ACCESS));
    }
    Ok(service)
}

/// Instance creation's service checks (API.md 3.3 checks 2-3; 404 for both).
pub fn load_for_new_instance(db: &Db, id: &str, user: &User) -> ApiResult<Service> {
    let service = find(db, id)?;
    if !may_use(db, &service, user)? {
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

/// A stored instance the caller passed the instance check for.
pub struct Instance {
    pub name: String,
    pub service: String,
}

/// Instance check (API.md 1.8): 404, or 403 for a caller in none of its teams.
pub fn load_instance(db: &Db, name: &str, user: &User) -> ApiResult<Instance> {
    let row = db.query_opt(
        "SELECT service FROM service_instances WHERE name = ?",
        params![name],
    )?;
    let row = row.ok_or_else(|| ApiError::not_found("Service instance not found"))?;
    let member = db.exists(
        "SELECT 1 FROM instance_teams t JOIN team_members m ON m.team = t.team \
         WHERE t.instance = ? AND m.email = ?",
        params![name, user.email.as_str()],
    )?;
    if !member {
        return Err(ApiError::forbidden(
            "User does not have access to this service instance",
        ));
    }
    Ok(Instance {
        name: name.to_string(),
        service: row.text(0),
    })
}

/// The teams and bound apps of an instance, both sorted.
pub fn instance_links(db: &Db, instance: &str) -> ApiResult<(Vec<String>, Vec<String>)> {
    let column = |sql: &str| -> ApiResult<Vec<String>> {
        Ok(db
            .query(sql, params![instance])?
            .iter()
            .map(|r| r.text(0))
            .collect())
    };
    Ok((
        column("SELECT team FROM instance_teams WHERE instance = ? ORDER BY team")?,
        column("SELECT app FROM instance_apps WHERE instance = ? ORDER BY app")?,
    ))
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
