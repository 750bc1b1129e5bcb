//! A registry token server of the tests' own, as Docker Hub's `auth.docker.io` is one: the
//! distribution registry configured with `auth: token` sends clients to it for a bearer token
//! (a JWT signed with a key whose self-signed certificate the registry trusts, carried in the
//! token's `x5c` header), and it grants what its rules allow: any pull of `public/…` to anyone,
//! everything to the one user who logs in with the right password. Every request is noted
//! (the account and the scopes asked for), so a test can see the handshake happened.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

/// The name the registry and the tokens use for the registry's service.
pub const SERVICE: &str = "berth-test-registry";
/// Who signs the tokens.
const ISSUER: &str = "berth-test-token-server";

/// One request the server answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest {
    /// The user who logged in, or `None` for an anonymous request.
    pub account: Option<String>,
    /// The scopes asked for, as sent (`repository:team/app:pull,push`).
    pub scopes: Vec<String>,
    /// Whether it got a token (a wrong password gets 401).
    pub granted: bool,
}

/// The running server: its realm for the registry's configuration, its certificate, and the
/// requests seen. Its thread ends with the test process.
pub struct TokenServer {
    pub realm: String,
    pub certificate: PathBuf,
    pub requests: Arc<Mutex<Vec<TokenRequest>>>,
}

impl TokenServer {
    /// Starts one on 127.0.0.1 with its key in `dir`, letting `user` in with `password`.
    pub fn start(dir: &Path, user: &str, password: &str) -> TokenServer {
        let key = dir.join("token-key.pem");
        let certificate = dir.join("token-cert.pem");
        let out = Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            ])
            .args(["-subj", "/CN=berth-test-token-server", "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&certificate)
            .output()
            .expect("openssl");
        assert!(out.status.success(), "openssl req: {:?}", out);
        let der = Command::new("openssl")
            .args(["x509", "-outform", "DER", "-in"])
            .arg(&certificate)
            .output()
            .expect("openssl");
        assert!(der.status.success(), "openssl x509: {:?}", der);
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let realm = format!(
            "http://{}/token",
            listener.local_addr().expect("its address")
        );
        let requests = Arc::new(Mutex::new(Vec::new()));
        let signer = Signer {
            key,
            x5c: base64(&der.stdout, STANDARD, true),
            basic: format!(
                "Basic {}",
                base64(format!("{user}:{password}").as_bytes(), STANDARD, true)
            ),
            user: user.to_owned(),
        };
        let seen = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                answer(stream, &signer, &seen);
            }
        });
        TokenServer {
            realm,
            certificate,
            requests,
        }
    }

    /// The registry's `auth:` section for this server.
    pub fn registry_config(&self) -> String {
        format!(
            "auth:\n  token:\n    realm: {}\n    service: {SERVICE}\n    issuer: {ISSUER}\n    rootcertbundle: {}\n",
            self.realm,
            self.certificate.display()
        )
    }

    pub fn requests(&self) -> Vec<TokenRequest> {
        self.requests
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

struct Signer {
    key: PathBuf,
    x5c: String,
    /// The `Authorization` header of the one user's right password.
    basic: String,
    user: String,
}

/// Answers one HTTP request (one a connection: `Connection: close`).
fn answer(stream: TcpStream, signer: &Signer, seen: &Mutex<Vec<TokenRequest>>) {
    let mut reader = BufReader::new(&stream);
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let target = line
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    let mut authorization = None;
    loop {
        let mut header = String::new();
        match reader.read_line(&mut header) {
            Ok(0) | Err(_) => break,
            Ok(_) if header.trim().is_empty() => break,
            Ok(_) => {
                if let Some((name, value)) = header.split_once(':')
                    && name.eq_ignore_ascii_case("authorization")
                {
                    authorization = Some(value.trim().to_owned());
                }
            }
        }
    }
    let query = target.split_once('?').map_or("", |(_, q)| q);
    let params: Vec<(String, String)> = query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (percent_decoded(k), percent_decoded(v)))
        .collect();
    let scopes: Vec<String> = params
        .iter()
        .filter(|(k, _)| k == "scope")
        .map(|(_, v)| v.clone())
        .collect();
    let account = match &authorization {
        None => Ok(None),
        Some(given) if *given == signer.basic => Ok(Some(signer.user.clone())),
        Some(_) => Err(()),
    };
    let mut out = &stream;
    let Ok(account) = account else {
        seen.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(TokenRequest {
                account: None,
                scopes,
                granted: false,
            });
        let body = r#"{"details":"wrong user name or password"}"#;
        let _ = write!(
            out,
            "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        return;
    };
    let access: Vec<serde_json::Value> = scopes
        .iter()
        .filter_map(|scope| {
            let mut parts = scope.splitn(3, ':');
            let (kind, name, actions) = (parts.next()?, parts.next()?, parts.next()?);
            let allowed: Vec<&str> = actions
                .split(',')
                .filter(|action| {
                    account.is_some() || (*action == "pull" && name.starts_with("public/"))
                })
                .collect();
            Some(serde_json::json!({"type": kind, "name": name, "actions": allowed}))
        })
        .collect();
    let token = signer.token(account.as_deref().unwrap_or(""), &access);
    seen.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push(TokenRequest {
            account,
            scopes,
            granted: true,
        });
    let body =
        serde_json::json!({"token": token, "access_token": token, "expires_in": 300}).to_string();
    let _ = write!(
        out,
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

impl Signer {
    /// A JWT (RS256) granting `access` to `subject`, valid for five minutes.
    fn token(&self, subject: &str, access: &[serde_json::Value]) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let header = serde_json::json!({"typ": "JWT", "alg": "RS256", "x5c": [self.x5c]});
        let claims = serde_json::json!({
            "iss": ISSUER, "sub": subject, "aud": SERVICE,
            "exp": now + 300, "nbf": now - 10, "iat": now, "jti": format!("{now}-{subject}"),
            "access": access,
        });
        let signing_input = format!(
            "{}.{}",
            base64(header.to_string().as_bytes(), URL_SAFE, false),
            base64(claims.to_string().as_bytes(), URL_SAFE, false)
        );
        let mut openssl = Command::new("openssl")
            .args(["dgst", "-sha256", "-sign"])
            .arg(&self.key)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("openssl");
        if let Some(mut stdin) = openssl.stdin.take() {
            let _ = stdin.write_all(signing_input.as_bytes());
        }
        let signed = openssl.wait_with_output().expect("openssl dgst");
        assert!(signed.status.success(), "openssl dgst: {signed:?}");
        format!(
            "{signing_input}.{}",
            base64(&signed.stdout, URL_SAFE, false)
        )
    }
}

const STANDARD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const URL_SAFE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Base64 of `bytes` in `alphabet`, with or without `=` padding (JWTs have none).
fn base64(bytes: &[u8], alphabet: &[u8; 64], pad: bool) -> String {
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(char::from(alphabet[((n >> (18 - 6 * i)) & 63) as usize]));
        }
        if pad {
            for _ in chunk.len()..3 {
                out.push('=');
            }
        }
    }
    out
}

/// A query component with `%XX` escapes and `+` decoded.
fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_rfc_4648_examples() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes(), STANDARD, true), encoded);
        }
        assert_eq!(base64(&[0xfb, 0xff], URL_SAFE, false), "-_8");
    }

    #[test]
    fn query_components_are_decoded() {
        assert_eq!(
            percent_decoded("repository%3Ateam%2Fapp%3Apull%2Cpush"),
            "repository:team/app:pull,push"
        );
        assert_eq!(percent_decoded("a+b%2"), "a b%2");
    }
}
