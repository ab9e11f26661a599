//! The login, consent and error pages: plain server-rendered HTML with
//! inline styles, no script and no external asset, readable on a phone.
//! Every value shown is HTML-escaped.

use std::fmt::Write;

/// Hidden fields every form carries: the sealed pending request and the
/// CSRF token.
#[derive(Debug, Clone, Copy)]
pub struct Hidden<'a> {
    /// The sealed authorization request.
    pub request: &'a str,
    /// The CSRF token (also in the CSRF cookie).
    pub csrf: &'a str,
}

/// HTML-escapes `s` into `out`.
fn escape_into(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    escape_into(&mut out, s);
    out
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;background:#f4f5f7;margin:0;color:#1d2330}\
main{max-width:26rem;margin:2rem auto;background:#fff;padding:1.5rem;border-radius:8px;\
box-shadow:0 1px 4px rgba(0,0,0,.12)}h1{font-size:1.35rem;margin-top:0}\
label{display:block;margin:.8rem 0 .3rem;font-weight:600}\
input[type=text],input[type=password]{width:100%;box-sizing:border-box;padding:.6rem;font-size:1rem;\
border:1px solid #b8bfcc;border-radius:4px}\
button{font-size:1rem;padding:.65rem 1rem;margin:1rem .4rem 0 0;border-radius:4px;border:1px solid #2d5bd7;\
background:#2d5bd7;color:#fff;cursor:pointer}button.secondary{background:#fff;color:#2d5bd7}\
.error{background:#fdecea;color:#8a1c12;padding:.6rem;border-radius:4px}ul{padding-left:1.2rem}\
.muted{color:#5c6578;font-size:.9rem}\
pre{white-space:pre-wrap;word-break:break-all;background:#f4f5f7;padding:.6rem;font-size:.8rem}";

/// The development server's callback page ([`crate::dev::callback`]): the
/// code and the commands that redeem it, or why there is none.
pub fn dev_callback(commands: Result<&str, &str>) -> String {
    let mut body = String::new();
    match commands {
        Ok(commands) => {
            body.push_str(
                "<h1>Approved</h1><p>Redeem the code within 60 seconds: paste these commands \
                 in the directory the development server runs in.</p><pre>",
            );
            escape_into(&mut body, commands);
            body.push_str("</pre>");
        }
        Err(why) => {
            body.push_str("<h1>No code</h1><p class=\"error\">");
            escape_into(&mut body, why);
            body.push_str("</p>");
        }
    }
    page("Development callback", &body)
}

fn page(title: &str, body: &str) -> String {
    let mut out = String::with_capacity(2048 + body.len());
    out.push_str("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">");
    out.push_str("<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">");
    out.push_str("<title>");
    escape_into(&mut out, title);
    out.push_str(" · certbound</title><style>");
    out.push_str(STYLE);
    out.push_str("</style></head><body><main>");
    out.push_str(body);
    out.push_str("</main></body></html>");
    out
}

fn hidden_fields(out: &mut String, step: &str, hidden: Hidden<'_>) {
    let _ = write!(
        out,
        "<input type=\"hidden\" name=\"step\" value=\"{}\">\
         <input type=\"hidden\" name=\"request\" value=\"{}\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        escape(step),
        escape(hidden.request),
        escape(hidden.csrf)
    );
}

/// The login form.
pub fn login(client_name: &str, hidden: Hidden<'_>, username: &str, error: Option<&str>) -> String {
    let mut body = String::with_capacity(1024);
    body.push_str("<h1>Sign in</h1><p class=\"muted\">to continue to <strong>");
    escape_into(&mut body, client_name);
    body.push_str("</strong></p>");
    if let Some(error) = error {
        body.push_str("<p class=\"error\" role=\"alert\" id=\"error\">");
        escape_into(&mut body, error);
        body.push_str("</p>");
    }
    // Relative: the form posts back under the path (and tenant) it came from.
    body.push_str("<form method=\"post\" action=\"authorize\">");
    hidden_fields(&mut body, "login", hidden);
    let _ = write!(
        body,
        "<label for=\"username\">Username</label>\
         <input type=\"text\" id=\"username\" name=\"username\" value=\"{}\" \
         autocomplete=\"username\" autocapitalize=\"none\" required autofocus>\
         <label for=\"password\">Password</label>\
         <input type=\"password\" id=\"password\" name=\"password\" \
         autocomplete=\"current-password\" required>\
         <button type=\"submit\" id=\"sign-in\">Sign in</button></form>",
        escape(username)
    );
    page("Sign in", &body)
}

/// What a scope means to a user (OIDC Core §5.4 for the standard ones).
fn describe(scope: &str) -> Option<&'static str> {
    match scope {
        "openid" => Some("Confirm who you are"),
        "profile" => Some("Your name"),
        "email" => Some("Your email address"),
        _ => None,
    }
}

/// The consent form with "Approve once", "Approve always" and "Deny", the
/// signed-in user and a "not you?" button (`switch_user`). `described`:
/// `login.scope_descriptions`.
pub fn consent(
    client_name: &str,
    username: &str,
    scopes: &[&str],
    described: &std::collections::BTreeMap<String, String>,
    hidden: Hidden<'_>,
) -> String {
    let mut body = String::with_capacity(1024);
    body.push_str("<h1>");
    escape_into(&mut body, client_name);
    body.push_str(" wants to access your account</h1><p class=\"muted\">Signed in as <strong>");
    escape_into(&mut body, username);
    body.push_str("</strong></p>");
    if scopes.is_empty() {
        body.push_str("<p>No specific permissions are requested.</p>");
    } else {
        body.push_str("<p>It asks for:</p><ul id=\"scopes\">");
        for scope in scopes {
            body.push_str("<li><code>");
            escape_into(&mut body, scope);
            body.push_str("</code>");
            if let Some(text) = described
                .get(*scope)
                .map(String::as_str)
                .or(describe(scope))
            {
                body.push_str(" — ");
                escape_into(&mut body, text);
            }
            body.push_str("</li>");
        }
        body.push_str("</ul>");
    }
    // Relative: the form posts back under the path (and tenant) it came from.
    body.push_str("<form method=\"post\" action=\"authorize\">");
    hidden_fields(&mut body, "consent", hidden);
    body.push_str(
        "<button type=\"submit\" name=\"decision\" value=\"approve_once\" id=\"approve-once\">Approve once</button>\
         <button type=\"submit\" name=\"decision\" value=\"approve_always\" id=\"approve-always\">Approve always</button>\
         <button type=\"submit\" name=\"decision\" value=\"deny\" id=\"deny\" class=\"secondary\">Deny</button>\
         <p class=\"muted\">Not you? <button type=\"submit\" name=\"decision\" value=\"switch_user\" id=\"switch-user\" class=\"secondary\">Sign in as someone else</button></p></form>",
    );
    page("Approve access", &body)
}

/// An error shown to the user, never redirected (RFC 6749 §4.1.2.1: an
/// untrusted redirect URI must not be followed).
pub fn error(title: &str, message: &str) -> String {
    let mut body = String::with_capacity(512);
    body.push_str("<h1>");
    escape_into(&mut body, title);
    body.push_str("</h1><p id=\"message\">");
    escape_into(&mut body, message);
    body.push_str("</p><p class=\"muted\">Return to the application and start again.</p>");
    page(title, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn everything_shown_is_escaped() {
        let hidden = Hidden {
            request: "r\"><script>",
            csrf: "c",
        };
        let html = login("<b>evil</b>", hidden, "\"onfocus=x", Some("<i>"));
        assert!(!html.contains("<b>evil"));
        assert!(!html.contains("<script>"));
        assert!(!html.contains("\"onfocus"));
        assert!(!html.contains("<i>"));
        let described = [("a\"b".to_string(), "<img src=x>".to_string())].into();
        let html = consent("c&", "u<", &["a\"b", "openid"], &described, hidden);
        assert!(html.contains("c&amp;") && html.contains("u&lt;") && html.contains("a&quot;b"));
        assert!(html.contains("&lt;img src=x&gt;") && !html.contains("<img"));
        assert!(html.contains("approve_always") && html.contains("deny"));
        assert!(!error("<t>", "<m>").contains("<m>"));
    }
}
