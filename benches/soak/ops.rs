//! The operations of the mixed load: token over mTLS, introspection, refresh rotation, a browser login for a code.

use std::sync::Mutex;

use serde_json::Value;

use super::*;

pub(crate) async fn form(
    client: &reqwest::Client,
    url: &str,
    body: String,
    headers: &[(&str, &str)],
) -> Result<Value, String> {
    let mut req = client
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let text = resp.text().await.map_err(|e| e.to_string())?;
    if status != 200 {
        return Err(format!("{status} {}", &text[..text.len().min(200)]));
    }
    Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
}

pub(crate) fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

pub(crate) async fn token_mtls(s: &Setup) -> Result<String, String> {
    let body = "grant_type=client_credentials&client_id=demo&scope=read".to_string();
    let v = form(&s.client, &format!("{}/oauth2/token", s.https), body, &[]).await?;
    v["access_token"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| "no access_token".into())
}

pub(crate) async fn introspect(s: &Setup, token: &str) -> Result<(), String> {
    let v = form(
        &s.plain,
        &format!("{}/oauth2/introspect", s.http),
        format!("token={}", enc(token)),
        &[("authorization", &s.rs_basic)],
    )
    .await?;
    match v["active"].as_bool() {
        Some(true) => Ok(()),
        _ => Err(format!("not active: {v}")),
    }
}

/// One operation of the mix; a token minted by an earlier one feeds the
/// cold introspections and revocations.
pub(crate) async fn operation(
    s: &Setup,
    op: usize,
    fresh: &Mutex<std::collections::VecDeque<String>>,
) -> Result<(), String> {
    match op {
        0 => {
            let t = token_mtls(s).await?;
            // The newest thousand: none is near its 60 s expiry.
            let mut f = fresh.lock().unwrap();
            f.push_back(t);
            if f.len() > 1000 {
                f.pop_front();
            }
            Ok(())
        }
        1 => form(
            &s.plain,
            &format!("{}/oauth2/token", s.http),
            "grant_type=client_credentials&client_id=demo".into(),
            &[("x-client-cert", &s.header_value)],
        )
        .await
        .map(|_| ()),
        2 => {
            let popped = fresh.lock().unwrap().pop_back();
            match popped {
                Some(t) => introspect(s, &t).await,
                None => introspect(s, &token_mtls(s).await?).await,
            }
        }
        3 => {
            let warm = s.warm.lock().unwrap().clone();
            introspect(s, &warm).await
        }
        4 => {
            let popped = fresh.lock().unwrap().pop_back();
            let t = match popped {
                Some(t) => t,
                None => token_mtls(s).await?,
            };
            form(
                &s.client,
                &format!("{}/oauth2/revoke", s.https),
                format!("client_id=demo&token={}", enc(&t)),
                &[],
            )
            .await
            .map(|_| ())
        }
        _ => unreachable!(),
    }
}

/// A refresh chain: each worker keeps its own refresh token and rotates it.
pub(crate) async fn rotate(s: &Setup, chain: &mut Option<String>) -> Result<(), String> {
    let rt = match chain.take() {
        Some(rt) => rt,
        None => code_login(s).await?,
    };
    let v = form(
        &s.client,
        &format!("{}/oauth2/token", s.https),
        format!(
            "grant_type=refresh_token&client_id=demo&refresh_token={}",
            enc(&rt)
        ),
        &[],
    )
    .await?;
    *chain = v["refresh_token"].as_str().map(str::to_string);
    Ok(())
}

pub(crate) fn hidden(page: &str, name: &str) -> Result<String, String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = page.find(&marker).ok_or("no form field")? + marker.len();
    let end = page[start..].find('"').ok_or("no form field end")? + start;
    Ok(page[start..end].to_string())
}

/// The browser flow: login page, password, consent, code redemption;
/// returns the refresh token.
pub(crate) async fn code_login(s: &Setup) -> Result<String, String> {
    let _one_at_a_time = s.login.lock().await;
    let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    let url = format!(
        "{}/oauth2/authorize?response_type=code&client_id=demo&redirect_uri={}&scope=openid%20read&state=s&code_challenge={challenge}&code_challenge_method=S256",
        s.https,
        enc("https://app.test/cb")
    );
    let resp = s.client.get(&url).send().await.map_err(|e| e.to_string())?;
    let cookies: Vec<String> = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok()?.split(';').next().map(str::to_string))
        .collect();
    let page = resp.text().await.map_err(|e| e.to_string())?;
    let post = |body: String, cookies: String| {
        s.client
            .post(format!("{}/oauth2/authorize", s.https))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("cookie", cookies)
            .body(body)
            .send()
    };
    let mut jar = cookies.join("; ");
    let login = post(
        format!(
            "step=login&request={}&csrf={}&username=soak&password=soak-password",
            hidden(&page, "request")?,
            hidden(&page, "csrf")?
        ),
        jar.clone(),
    )
    .await
    .map_err(|e| e.to_string())?;
    if login.status() != 200 {
        return Err(format!("login answered {}", login.status()));
    }
    let resp = login;
    for c in resp.headers().get_all("set-cookie") {
        if let Some(pair) = c.to_str().ok().and_then(|v| v.split(';').next()) {
            jar.push_str("; ");
            jar.push_str(pair);
        }
    }
    let consent = resp.text().await.map_err(|e| e.to_string())?;
    let resp = post(
        format!(
            "step=consent&decision=approve_once&request={}&csrf={}",
            hidden(&consent, "request")?,
            hidden(&consent, "csrf")?
        ),
        jar,
    )
    .await
    .map_err(|e| e.to_string())?;
    let location = resp
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| format!("no redirect: {}", resp.status()))?;
    let code = url::Url::parse(location)
        .map_err(|e| e.to_string())?
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .ok_or("no code")?;
    let v = form(
        &s.client,
        &format!("{}/oauth2/token", s.https),
        format!(
            "grant_type=authorization_code&client_id=demo&code={}&redirect_uri={}&code_verifier={verifier}",
            enc(&code),
            enc("https://app.test/cb")
        ),
        &[],
    )
    .await?;
    v["refresh_token"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| "no refresh_token".into())
}
