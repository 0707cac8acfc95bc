//! Who may use the admin API: the one rule, for the API and the dashboard alike.
//!
//! With a token, a request needs either `Authorization: Bearer <token>` (any method) or the
//! dashboard's session cookie (`GET` only: the dashboard is read-only, so a form another site
//! makes a browser send can never change a workload). Both are compared in constant time.
//! Without a token (only ever on loopback), everything is allowed.
//!
//! The cookie carries `HMAC-SHA256(token, "hearth-ui-session")`, not the token: a browser's
//! cookie jar then holds nothing that works as a bearer token, and a new token ends every
//! session. It is `HttpOnly` (no script reads it) and `SameSite=Strict` (no other site's
//! request carries it).

use hmac::{Hmac, Mac};
use http::{HeaderMap, Method, header};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// The session cookie's name.
pub(crate) const COOKIE: &str = "hearth_ui";

/// What a request presented, and whether it is enough.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// No token is configured.
    Open,
    /// The right bearer token.
    Bearer,
    /// The right session cookie on a `GET`.
    Cookie,
    /// The right session cookie on another method: refused.
    CookieNotForWrites,
    /// Nothing, or something wrong: refused.
    Refused,
}

impl Verdict {
    /// Whether the request may go on.
    pub(crate) fn allowed(self) -> bool {
        matches!(self, Verdict::Open | Verdict::Bearer | Verdict::Cookie)
    }

    /// What a refusal says in the log (never the token).
    pub(crate) fn why(self) -> &'static str {
        match self {
            Verdict::CookieNotForWrites => {
                "the dashboard's session cookie is accepted for GET only; send the bearer token"
            }
            _ => "missing or wrong bearer token",
        }
    }
}

/// The admin token, if one is configured.
pub(crate) struct Auth<'a> {
    pub token: Option<&'a str>,
}

impl Auth<'_> {
    /// Judges a request's credentials.
    pub(crate) fn check(&self, method: &Method, headers: &HeaderMap) -> Verdict {
        let Some(token) = self.token else {
            return Verdict::Open;
        };
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if let Some(presented) = bearer
            && bool::from(presented.as_bytes().ct_eq(token.as_bytes()))
        {
            return Verdict::Bearer;
        }
        match cookie(headers) {
            Some(presented) if self.session_matches(presented) => {
                if *method == Method::GET {
                    Verdict::Cookie
                } else {
                    Verdict::CookieNotForWrites
                }
            }
            _ => Verdict::Refused,
        }
    }

    /// Whether a token typed into the login form is the right one.
    pub(crate) fn token_matches(&self, presented: &str) -> bool {
        self.token
            .is_some_and(|t| bool::from(presented.as_bytes().ct_eq(t.as_bytes())))
    }

    fn session_matches(&self, presented: &str) -> bool {
        self.session()
            .is_some_and(|s| bool::from(presented.as_bytes().ct_eq(s.as_bytes())))
    }

    /// The session cookie's value for the configured token.
    pub(crate) fn session(&self) -> Option<String> {
        self.token
            .and_then(|t| Hmac::<Sha256>::new_from_slice(t.as_bytes()).ok())
            .map(|mac| {
                hex::encode(
                    mac.chain_update(b"hearth-ui-session")
                        .finalize()
                        .into_bytes(),
                )
            })
    }
}

/// The value of the session cookie in `Cookie` headers, if any.
fn cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(k.clone(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    const AUTH: Auth<'static> = Auth {
        token: Some("s3cret"),
    };

    fn session_cookie() -> String {
        format!("other=1; {COOKIE}={}", AUTH.session().unwrap())
    }

    #[test]
    fn no_token_configured_allows_everything() {
        let open = Auth { token: None };
        assert_eq!(open.check(&Method::GET, &HeaderMap::new()), Verdict::Open);
        assert_eq!(
            open.check(&Method::DELETE, &HeaderMap::new()),
            Verdict::Open
        );
        assert!(
            !open.token_matches(""),
            "no token: the login form has nothing to match"
        );
    }

    #[test]
    fn bearer_is_accepted_for_every_method_and_a_wrong_one_refused() {
        let right = headers(&[(header::AUTHORIZATION, "Bearer s3cret")]);
        let wrong = headers(&[(header::AUTHORIZATION, "Bearer s3cre")]);
        assert_eq!(AUTH.check(&Method::PUT, &right), Verdict::Bearer);
        assert_eq!(AUTH.check(&Method::GET, &wrong), Verdict::Refused);
        assert_eq!(
            AUTH.check(&Method::GET, &HeaderMap::new()),
            Verdict::Refused
        );
    }

    #[test]
    fn cookie_is_accepted_for_get_only() {
        let h = headers(&[(header::COOKIE, session_cookie().as_str())]);
        assert_eq!(AUTH.check(&Method::GET, &h), Verdict::Cookie);
        for method in [Method::PUT, Method::DELETE, Method::POST] {
            let verdict = AUTH.check(&method, &h);
            assert_eq!(verdict, Verdict::CookieNotForWrites, "{method}");
            assert!(!verdict.allowed());
        }
    }

    #[test]
    fn a_wrong_cookie_or_the_raw_token_as_cookie_is_refused() {
        for value in ["s3cret", "00", ""] {
            let h = headers(&[(header::COOKIE, format!("{COOKIE}={value}").as_str())]);
            assert_eq!(AUTH.check(&Method::GET, &h), Verdict::Refused, "{value}");
        }
        // A cookie made for another token does not open this host.
        let other = Auth {
            token: Some("other"),
        };
        let h = headers(&[(
            header::COOKIE,
            format!("{COOKIE}={}", other.session().unwrap()).as_str(),
        )]);
        assert_eq!(AUTH.check(&Method::GET, &h), Verdict::Refused);
    }

    #[test]
    fn the_login_form_token_is_compared_exactly() {
        assert!(AUTH.token_matches("s3cret"));
        assert!(!AUTH.token_matches("s3cret "));
        assert!(!AUTH.token_matches(""));
    }
}
