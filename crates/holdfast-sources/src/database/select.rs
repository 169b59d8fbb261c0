//! What a tables-mode backup selects: the include/exclude/tenant rules
//! (`--include-table`, `--exclude-table`, `--tenant-column/--tenant-value`),
//! the `--query` result sets and the rules they must pass, and the names
//! their files get inside the snapshot. Pure: no database is asked.

use holdfast_format::manifest::Manifest;

/// What a tables-mode backup exports (`--include-table`, `--exclude-table`,
/// `--tenant-column/--tenant-value`, `--query`).
#[derive(Debug, Clone, Default)]
pub struct TablesOptions {
    /// Glob patterns on `schema.table` or `table`.
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    /// Keep only rows whose column has this value.
    pub tenant: Option<Tenant>,
    /// Extra result sets: (name, SELECT …).
    pub queries: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    pub column: String,
    pub value: String,
}

/// How one table enters a tables-mode snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selection {
    /// Not at all: no file, no manifest entry, no DDL.
    Left,
    /// Every row.
    Whole,
    /// Only the tenant's rows.
    TenantRows,
}

/// The include/exclude/tenant rules, compiled.
pub struct TableFilter {
    include: globset::GlobSet,
    has_include: bool,
    exclude: globset::GlobSet,
    tenant: Option<Tenant>,
}

fn glob_set(patterns: &[String], flag: &str) -> holdfast_engine::Result<globset::GlobSet> {
    let mut b = globset::GlobSetBuilder::new();
    for p in patterns {
        let g = globset::GlobBuilder::new(p)
            .literal_separator(false)
            .build()
            .map_err(|e| holdfast_engine::EngineError::Invalid(format!("{flag} {p:?}: {e}")))?;
        b.add(g);
    }
    b.build()
        .map_err(|e| holdfast_engine::EngineError::Invalid(format!("{flag}: {e}")))
}

impl TableFilter {
    pub fn new(opts: &TablesOptions) -> holdfast_engine::Result<TableFilter> {
        opts.check_queries()?;
        Ok(TableFilter {
            include: glob_set(&opts.include, "--include-table")?,
            has_include: !opts.include.is_empty(),
            exclude: glob_set(&opts.exclude, "--exclude-table")?,
            tenant: opts.tenant.clone(),
        })
    }

    fn matches(set: &globset::GlobSet, schema: Option<&str>, table: &str) -> bool {
        set.is_match(table) || schema.is_some_and(|s| set.is_match(format!("{s}.{table}")))
    }

    /// How `schema.table` (with these columns) enters the snapshot.
    pub fn select(&self, schema: Option<&str>, table: &str, columns: &[String]) -> Selection {
        if Self::matches(&self.exclude, schema, table) {
            return Selection::Left;
        }
        let included = Self::matches(&self.include, schema, table);
        match &self.tenant {
            Some(t) if columns.iter().any(|c| c == &t.column) => Selection::TenantRows,
            // Without the tenant column: reference data, only when named.
            Some(_) if included => Selection::Whole,
            Some(_) => Selection::Left,
            None if !self.has_include || included => Selection::Whole,
            None => Selection::Left,
        }
    }
}

/// Why `sql` cannot be a `--query`: each is one `SELECT` (or `WITH …
/// SELECT`) on one line, without a backslash or a `;` inside. The queries
/// reach the database through its client's script input (psql, mysql),
/// where a backslash starts a client command (`\!` runs a shell) and a line
/// can begin one (`system …`); SQLite's are also prepared read-only.
pub fn check_query(sql: &str) -> Result<(), String> {
    let body = sql.trim().trim_end_matches(';').trim_end();
    let first = body
        .split(|c: char| !c.is_ascii_alphanumeric())
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    if first != "select" && first != "with" {
        return Err("a query is one SELECT (or WITH … SELECT) statement".into());
    }
    if body.contains('\\') {
        return Err(
            "a query may not contain a backslash (a client command in psql and mysql)".into(),
        );
    }
    if body.contains(';') {
        return Err("a query is one statement: no `;` inside".into());
    }
    if body.chars().any(|c| c.is_control() && c != '\t') {
        return Err("a query is written on one line".into());
    }
    Ok(())
}

impl TablesOptions {
    /// Every `--query` passes [`check_query`].
    pub fn check_queries(&self) -> holdfast_engine::Result<()> {
        for (name, sql) in &self.queries {
            check_query(sql).map_err(|why| {
                holdfast_engine::EngineError::Invalid(format!("--query {name}: {why}"))
            })?;
        }
        Ok(())
    }

    /// Warnings for `--query` results without ORDER BY.
    pub fn query_warnings(&self) -> Vec<String> {
        self.queries
            .iter()
            .filter(|(_, sql)| !has_order_by(sql))
            .map(|(name, _)| {
                format!(
                    "query {name} has no ORDER BY: its rows come in no defined order, which \
                     defeats deduplication and comparison between runs"
                )
            })
            .collect()
    }

    /// With a tenant, at least one table must hold its column: otherwise
    /// the operator named the wrong column, and an empty export would hide it.
    pub fn check_tenant_found(
        &self,
        selections: impl IntoIterator<Item = Selection>,
        source: &str,
    ) -> holdfast_engine::Result<()> {
        if let Some(tenant) = &self.tenant
            && !selections.into_iter().any(|s| s == Selection::TenantRows)
        {
            return Err(holdfast_engine::EngineError::Invalid(format!(
                "no table of {source} has the tenant column {:?}; no snapshot was written",
                tenant.column
            )));
        }
        Ok(())
    }

    /// Record the tenant and the query names in the manifest.
    pub fn describe_in(&self, manifest: &mut Manifest) {
        if let Some(t) = &self.tenant {
            manifest.extra.insert(
                "tenant".into(),
                serde_json::json!({"column": t.column, "value": t.value}),
            );
        }
        if !self.queries.is_empty() {
            let names: Vec<&str> = self.queries.iter().map(|(n, _)| n.as_str()).collect();
            manifest
                .extra
                .insert("queries".into(), serde_json::json!(names));
        }
    }
}

/// Whether a query's text orders its rows (a result set without ORDER BY
/// comes out in whatever order the server likes, which defeats dedup and
/// comparison).
pub fn has_order_by(sql: &str) -> bool {
    let lower = sql.to_ascii_lowercase();
    let words: Vec<&str> = lower.split_whitespace().collect();
    words
        .windows(2)
        .any(|w| w[0] == "order" && w[1].starts_with("by"))
}

/// A file name for a table or query inside the snapshot: `tables/NAME.csv`
/// with `/`, control characters and a leading dot made safe.
pub fn table_file(dir: &str, name: &str) -> String {
    let mut clean: String = name
        .chars()
        .map(|c| {
            if c == '/' || c == '\\' || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect();
    if clean.starts_with('.') || clean.is_empty() {
        clean.insert(0, '_');
    }
    format!("{dir}/{clean}.csv")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cols(c: &[&str]) -> Vec<String> {
        c.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn selection_rules() {
        let f = TableFilter::new(&TablesOptions {
            exclude: vec!["audit*".into(), "secret.*".into()],
            ..Default::default()
        })
        .unwrap();
        assert_eq!(f.select(Some("public"), "orders", &[]), Selection::Whole);
        assert_eq!(f.select(Some("public"), "audit_log", &[]), Selection::Left);
        assert_eq!(f.select(Some("secret"), "keys", &[]), Selection::Left);

        let f = TableFilter::new(&TablesOptions {
            include: vec!["public.orders".into(), "customers".into()],
            ..Default::default()
        })
        .unwrap();
        assert_eq!(f.select(Some("public"), "orders", &[]), Selection::Whole);
        assert_eq!(f.select(Some("other"), "customers", &[]), Selection::Whole);
        assert_eq!(f.select(Some("other"), "orders", &[]), Selection::Left);

        let f = TableFilter::new(&TablesOptions {
            include: vec!["countries".into()],
            exclude: vec!["sessions".into()],
            tenant: Some(Tenant {
                column: "org_id".into(),
                value: "42".into(),
            }),
            ..Default::default()
        })
        .unwrap();
        let with = cols(&["id", "org_id"]);
        assert_eq!(
            f.select(Some("public"), "orders", &with),
            Selection::TenantRows
        );
        assert_eq!(f.select(Some("public"), "sessions", &with), Selection::Left);
        assert_eq!(
            f.select(Some("public"), "countries", &cols(&["code"])),
            Selection::Whole
        );
        assert_eq!(
            f.select(Some("public"), "plans", &cols(&["id"])),
            Selection::Left
        );
    }

    #[test]
    fn order_by_detection_and_file_names() {
        assert!(has_order_by("select * from t ORDER  BY id"));
        assert!(has_order_by("select * from t order\nby(id)"));
        assert!(!has_order_by("select * from orders_by_day"));
        assert_eq!(
            table_file("tables", "public.orders"),
            "tables/public.orders.csv"
        );
        assert_eq!(table_file("queries", "../x"), "queries/_.._x.csv");
    }

    #[test]
    fn queries_are_single_selects_that_no_client_can_read_as_a_command() {
        for ok in [
            "SELECT org_id, count(*) FROM users GROUP BY 1 ORDER BY 1",
            "  with t as (select 1 as n) select n from t;",
            "SELECT 'a' AS x\tORDER BY 1",
        ] {
            assert!(check_query(ok).is_ok(), "{ok}");
        }
        for bad in [
            "SELECT 1 \\! cat /etc/shadow",
            "SELECT 1\n\\! id\nSELECT 1",
            "SELECT 1; DROP TABLE users",
            "SELECT 1\nsystem id",
            "ATTACH '/var/lib/holdfast/catalog.db' AS c",
            "COMMIT",
            "VACUUM INTO '/tmp/x'",
            "",
        ] {
            assert!(check_query(bad).is_err(), "{bad:?}");
        }
    }
}
