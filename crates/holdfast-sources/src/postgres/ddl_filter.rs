//! pg_dump's plain DDL with some of its entries left out.
//!
//! pg_dump's `--exclude-table` leaves out a table and what belongs to it,
//! but not what *other* objects say about it: a foreign key of a kept
//! table that references an excluded one is still dumped (its line names
//! the excluded table, and restoring it fails). pg_dump has no option to
//! leave out one constraint, so the plain output is filtered by its table
//! of contents: every entry starts with a header comment
//!
//! ```text
//! -- Name: orders orders_customer_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
//! ```
//!
//! and runs to the next header. An entry whose header starts with one of
//! the given prefixes is dropped, header to header; everything else passes
//! through unchanged. Lines are handled one at a time, so memory stays
//! bounded by the longest line.

use crate::line_filter::LineEdit;

/// The header prefixes of the entries that belong to the foreign key
/// `constraint` on `schema.table`: the constraint and a comment on it.
pub fn foreign_key_headers(schema: &str, table: &str, constraint: &str) -> Vec<String> {
    vec![
        format!("-- Name: {table} {constraint}; Type: FK CONSTRAINT; Schema: {schema}; Owner:"),
        format!(
            "-- Name: CONSTRAINT {constraint} ON {table}; Type: COMMENT; Schema: {schema}; Owner:"
        ),
    ]
}

/// Leaves out pg_dump's entries whose header line starts with one of the
/// prefixes (see the module documentation); use with
/// [`LineFilter`](crate::line_filter::LineFilter).
pub struct DropEntries {
    drop: Vec<String>,
    skipping: bool,
    /// Entries left out so far.
    pub dropped: usize,
}

const HEADER: &[u8] = b"-- Name: ";
const TRAILER: &[u8] = b"-- PostgreSQL database dump complete";

impl DropEntries {
    pub fn new(drop: Vec<String>) -> DropEntries {
        DropEntries {
            drop,
            skipping: false,
            dropped: 0,
        }
    }
}

impl LineEdit for DropEntries {
    fn line(&mut self, line: &[u8], out: &mut Vec<u8>) {
        if line.starts_with(HEADER) {
            self.skipping = self.drop.iter().any(|p| line.starts_with(p.as_bytes()));
            self.dropped += usize::from(self.skipping);
        } else if line.starts_with(TRAILER) {
            self.skipping = false;
        }
        if !self.skipping {
            out.extend_from_slice(line);
        }
    }

    fn is_identity(&self) -> bool {
        self.drop.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::line_filter::filter_in_pieces;

    const DUMP: &str = "--
-- PostgreSQL database dump
--

--
-- Name: orders orders_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.orders
    ADD CONSTRAINT orders_pkey PRIMARY KEY (id);


--
-- Name: orders orders_vault_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.orders
    ADD CONSTRAINT orders_vault_fkey FOREIGN KEY (vault_id) REFERENCES public.vault(id);


--
-- Name: CONSTRAINT orders_vault_fkey ON orders; Type: COMMENT; Schema: public; Owner: -
--

COMMENT ON CONSTRAINT orders_vault_fkey ON public.orders IS 'points at the vault';


--
-- Name: orders orders_customer_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.orders
    ADD CONSTRAINT orders_customer_fkey FOREIGN KEY (customer_id) REFERENCES public.customers(id);


--
-- PostgreSQL database dump complete
--

";

    fn filtered(drop: Vec<String>, step: usize) -> (String, usize) {
        let (out, edit) = filter_in_pieces(DUMP, DropEntries::new(drop), step);
        (out, edit.dropped)
    }

    #[test]
    fn drops_a_foreign_key_and_its_comment_and_nothing_else() {
        for step in [1, 5, 4096] {
            let (out, dropped) = filtered(
                foreign_key_headers("public", "orders", "orders_vault_fkey"),
                step,
            );
            assert_eq!(dropped, 2);
            assert!(!out.contains("vault"), "{out}");
            assert!(out.contains("ADD CONSTRAINT orders_pkey PRIMARY KEY (id);"));
            assert!(out.contains("REFERENCES public.customers(id);"));
            assert!(out.ends_with("-- PostgreSQL database dump complete\n--\n\n"));
        }
    }

    #[test]
    fn without_prefixes_the_output_is_unchanged() {
        assert_eq!(filtered(Vec::new(), 3), (DUMP.to_string(), 0));
        let other = foreign_key_headers("other", "orders", "orders_vault_fkey");
        assert_eq!(filtered(other, 3), (DUMP.to_string(), 0));
    }
}
