//! Who is calling: the caller an access check resolved from the request's token and
//! stored in the request's context (the checks themselves are `identity::access`).

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Never reused: a user registered again with the same email gets a new id.
    pub id: i64,
    pub email: String,
    /// Teams listing the user as a member, sorted by name.
    pub teams: Vec<String>,
    pub is_admin: bool,
}

impl User {
    pub fn in_team(&self, team: &str) -> bool {
        self.teams.iter().any(|t| t == team)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppCaller {
    /// The app (or client) name the token was issued for.
    pub app: String,
    /// The app's id; `None` for a system token (any client name, e.g. the git hook's).
    pub id: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    User(User),
    App(AppCaller),
}
