//! User and group names <-> ids from passwd/group-format files (no NSS: the
//! agent reads the files it is given, the same in a container as on the host).

use std::collections::HashMap;

/// `name -> id` and `id -> name` from a passwd- or group-format file.
#[derive(Debug, Default)]
pub struct NameDb {
    by_id: HashMap<u32, String>,
    by_name: HashMap<String, u32>,
}

impl NameDb {
    /// Parses `/etc/passwd` / `/etc/group` lines (`name:x:id:...`); the first
    /// entry for an id or a name wins, as getpwuid/getpwnam do. Bad lines are skipped.
    pub fn parse(text: &str) -> Self {
        let mut db = Self::default();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut f = line.split(':');
            let (Some(name), Some(_), Some(id)) = (f.next(), f.next(), f.next()) else {
                continue;
            };
            let Ok(id) = id.parse::<u32>() else { continue };
            if name.is_empty() {
                continue;
            }
            db.by_id.entry(id).or_insert_with(|| name.to_string());
            db.by_name.entry(name.to_string()).or_insert(id);
        }
        db
    }

    pub fn load(path: &str) -> Self {
        std::fs::read_to_string(path)
            .map(|t| Self::parse(&t))
            .unwrap_or_default()
    }

    pub fn name(&self, id: u32) -> Option<&str> {
        self.by_id.get(&id).map(String::as_str)
    }

    pub fn id(&self, name: &str) -> Option<u32> {
        self.by_name.get(name).copied()
    }
}

/// A group given by name or number, resolved against /etc/group.
pub fn resolve_group(group: &str) -> Option<u32> {
    group
        .parse::<u32>()
        .ok()
        .or_else(|| NameDb::load("/etc/group").id(group))
}
