//! The page shell: navigation, header and the document around a page's
//! content. Every page is readable without JavaScript.

use axum::response::Html;
use maud::{DOCTYPE, Markup, html};

use super::asset_path;
use super::session::{Signed, encode};
use crate::i18n::{Lang, Tr};

/// Which entry of the navigation a page belongs to.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Overview,
    Backups,
    Sources,
    Audit,
    Tokens,
    Tenants,
}

fn head(tr: Tr, title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · " (tr.t("app.name")) }
            link rel="stylesheet" href=(asset_path("app.css"));
            script src=(asset_path("app.js")) defer {}
        }
    }
}

fn lang_links(tr: Tr, here: &str) -> Markup {
    html! {
        nav.lang aria-label=(tr.t("nav.language")) {
            @for l in Lang::all() {
                @if l == tr.0 {
                    span aria-current="true" lang=(l.code()) { (l.name()) }
                } @else {
                    a href={ "/ui/lang/" (l.code()) "?next=" (encode(here)) } lang=(l.code()) hreflang=(l.code()) { (l.name()) }
                }
            }
        }
    }
}

/// A signed-in page: the navigation, the header, then `content`.
pub fn page(s: &Signed, nav: Nav, title: &str, tenant_q: &str, content: Markup) -> Html<String> {
    let tr = s.tr;
    let item = |n: Nav, href: String, key: &str| {
        html! {
            li { a href=(href) aria-current=[(n == nav).then_some("page")] { (tr.t(key)) } }
        }
    };
    Html(html! {
        (DOCTYPE)
        html lang=(tr.0.code()) {
            (head(tr, title))
            body {
                a.skip href="#main" { (tr.t("app.skip")) }
                header.top {
                    a.brand href="/" { span.logo aria-hidden="true" { "◆" } (tr.t("app.name")) }
                    div.who {
                        span { (tr.f("nav.signed_in_as", &[("label", &s.token.label), ("role", tr.t(&format!("role.{}", s.token.role.as_str())))])) }
                        form method="post" action="/ui/signout" {
                            input type="hidden" name="csrf" value=(s.session.csrf);
                            button.link type="submit" { (tr.t("nav.sign_out")) }
                        }
                        (lang_links(tr, &s.here))
                    }
                }
                div.frame {
                    nav.side aria-label=(tr.t("nav.main")) {
                        ul {
                            (item(Nav::Overview, format!("/{tenant_q}"), "nav.overview"))
                            (item(Nav::Backups, format!("/ui/backups{tenant_q}"), "nav.backups"))
                            (item(Nav::Sources, format!("/ui/sources{tenant_q}"), "nav.sources"))
                            (item(Nav::Audit, "/ui/audit".into(), "nav.audit"))
                            @if s.is_admin() {
                                (item(Nav::Tokens, "/ui/tokens".into(), "nav.tokens"))
                                (item(Nav::Tenants, "/ui/tenants".into(), "nav.tenants"))
                            }
                        }
                    }
                    main #main {
                        h1 { (title) }
                        (content)
                    }
                }
            }
        }
    }
    .into_string())
}

/// A confirmation page: the question, then a form (with the session's
/// CSRF secret and `extra` fields) that posts to `action`, or back.
pub fn confirm(
    s: &Signed,
    nav: Nav,
    title: &str,
    question: &str,
    action: &str,
    back: &str,
    extra: Markup,
) -> Html<String> {
    let tr = s.tr;
    let content = html! {
        div.confirm {
            p { (question) }
            form.stack method="post" action=(action) {
                input type="hidden" name="csrf" value=(s.session.csrf);
                (extra)
                div.buttons {
                    button type="submit" { (tr.t("action.confirm")) }
                    a.button.secondary href=(back) { (tr.t("action.cancel")) }
                }
            }
        }
    };
    page(s, nav, title, "", content)
}

/// A page without navigation: sign-in and errors.
pub fn bare(tr: Tr, title: &str, message: &str) -> Html<String> {
    bare_with(
        tr,
        title,
        "/",
        html! { p { (message) } p { a href="/" { (tr.t("error.back")) } } },
    )
}

pub fn bare_with(tr: Tr, title: &str, here: &str, content: Markup) -> Html<String> {
    Html(
        html! {
            (DOCTYPE)
            html lang=(tr.0.code()) {
                (head(tr, title))
                body.bare {
                    main #main.card {
                        p.brand { span.logo aria-hidden="true" { "◆" } (tr.t("app.name")) }
                        h1 { (title) }
                        (content)
                        (lang_links(tr, here))
                    }
                }
            }
        }
        .into_string(),
    )
}
