//! The chat page (issue 31) in a real browser: headless Chromium driven over WebDriver
//! (chromedriver), two users in two browser sessions, each page served by its account's
//! daemon (`ethmls ui`): create, invite, accept, chat both ways, a message carrying HTML and
//! script shown as text, a removal, a reload that keeps the history.

use super::*;

use fantoccini::{Client, ClientBuilder, Locator};

/// chromedriver on a free port, in a process group of its own; on drop the group is killed,
/// the browsers it started with it (a failed test leaves none running).
struct Driver(Child, String);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-9", "--", &format!("-{}", self.0.id())])
            .status();
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn chromedriver() -> Driver {
    let port = free_port();
    let mut command = Command::new("chromedriver");
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let child = command
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver (Debian's chromium-driver; .ci/run installs it)");
    let driver = Driver(child, format!("http://127.0.0.1:{port}"));
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return driver;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("chromedriver did not start");
}

/// A headless Chromium session with a profile of its own.
async fn browser(driver: &str, profile: &Path) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({ "args": [
            "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--window-size=1280,800", format!("--user-data-dir={}", profile.display()),
        ]}),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(driver)
        .await
        .expect("a Chromium session")
}

/// Waits (up to `secs`) until the script's expression holds in the page.
async fn until(page: &Client, what: &str, secs: u64, expression: &str) {
    let script = format!("return !!({expression});");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if page.execute(&script, vec![]).await.ok() == Some(Value::Bool(true)) {
            return;
        }
        if std::time::Instant::now() >= deadline {
            let text = page
                .execute("return document.body.innerText;", vec![])
                .await
                .unwrap_or_default();
            panic!("timed out waiting for {what}; the page shows:\n{text}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Whether a message with exactly `text` is shown.
fn shows(text: &str) -> String {
    format!(
        "[...document.querySelectorAll('#messages .text')].some(e => e.textContent === {})",
        serde_json::to_string(text).unwrap()
    )
}

/// Clicks the element (waiting up to 30 s for it to be there).
async fn click(page: &Client, css: &str) {
    let query = format!(
        "document.querySelector({})",
        serde_json::to_string(css).unwrap()
    );
    until(page, css, 30, &query).await;
    // The page re-renders its lists when events come: an element found may be replaced
    // before the click lands (stale), so it is found again.
    let mut last = None;
    for _ in 0..50 {
        match page.find(Locator::Css(css)).await {
            Ok(e) => match e.click().await {
                Ok(()) => return,
                Err(err) => last = Some(err.to_string()),
            },
            Err(err) => last = Some(err.to_string()),
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("{css}: {last:?}");
}

async fn type_in(page: &Client, css: &str, text: &str) {
    page.find(Locator::Css(css))
        .await
        .unwrap()
        .send_keys(text)
        .await
        .unwrap();
}

/// The Enter key (WebDriver's code for it).
const ENTER: &str = "\u{E007}";

#[test]
fn two_users_chat_in_the_browser() {
    let Pair {
        rt,
        devnet,
        dir,
        alice,
        bob,
        _daemons,
    } = Pair::registered("cli-page");
    let b = format!("{:#x}", devnet.addresses()[2]);
    // `ethmls ui` starts each account's daemon and gives its page's address.
    let alice_url = alice.ok(&["ui", "--no-open"])["url"]
        .as_str()
        .unwrap()
        .to_string();
    let bob_url = bob.ok(&["ui", "--no-open"])["url"]
        .as_str()
        .unwrap()
        .to_string();
    // Without the token the page is refused.
    let (no_token, _) = bob_url.split_once("?token=").unwrap();
    let port: u16 = no_token
        .trim_end_matches('/')
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    use std::io::{Read as _, Write as _};
    write!(
        s,
        "GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");

    let driver = chromedriver();
    rt.block_on(async {
        let a = browser(&driver.1, &dir.join("chrome-alice")).await;
        let bb = browser(&driver.1, &dir.join("chrome-bob")).await;
        a.goto(&alice_url).await.unwrap();
        bb.goto(&bob_url).await.unwrap();
        for page in [&a, &bb] {
            until(page, "the connection", 20, "document.getElementById('connection').textContent === 'connected'").await;
        }

        // Alice creates a group and invites bob, with the keyboard.
        type_in(&a, "#create-name", &format!("web{ENTER}")).await;
        until(&a, "the new group", 60, "!document.getElementById('text').disabled").await;
        type_in(&a, "#invite-address", &format!("{b}{ENTER}")).await;

        // Bob accepts; alice's daemon adds him.
        until(&bb, "the invitation", 60, "document.querySelector('#invitations button.accept')").await;
        click(&bb, "#invitations button.accept").await;
        until(&bb, "the joined group", 90, "document.querySelector('#groups button.group')").await;
        click(&bb, "#groups button.group").await;
        until(&bb, "the chat", 30, "!document.getElementById('text').disabled").await;

        // Both ways.
        type_in(&a, "#text", &format!("hi bob{ENTER}")).await;
        until(&bb, "alice's message at bob", 30, &shows("hi bob")).await;
        type_in(&bb, "#text", &format!("hi alice{ENTER}")).await;
        until(&a, "bob's message at alice", 30, &shows("hi alice")).await;
        // The sender is shown short, in full on hover.
        let title = a
            .execute(
                "return [...document.querySelectorAll('#messages li')].find(li => li.textContent.includes('hi alice')).querySelector('.sender').title;",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(title, Value::String(b.clone()));

        // HTML and script from another account are text.
        let attack = r#"<img src=x onerror="window.pwned=1"><script>window.pwned=2</script><b>bold</b>"#;
        type_in(&bb, "#text", &format!("{attack}{ENTER}")).await;
        until(&a, "the attack shown as text", 30, &shows(attack)).await;
        let injected = a
            .execute(
                "return [document.querySelectorAll('#messages img, #messages script, #messages b').length, typeof window.pwned];",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(injected, serde_json::json!([0, "undefined"]));
        // A line break or a bidirectional override cannot fake another line or reorder the
        // text: written out, as the terminal does.
        // (Sent with `ethmls send`, through bob's daemon: any client can send any bytes.)
        let group = bob.ok(&["group", "list"])["groups"][0]["group"]
            .as_str()
            .unwrap()
            .to_string();
        bob.ok(&["send", &group, "fine\u{202e}enif\nalice: forged"]);
        until(
            &a,
            "the override written out",
            30,
            &shows("fine\\u{202e}enif\\u{a}alice: forged"),
        )
        .await;

        // Alice removes bob: his page says so.
        until(&a, "bob among the members", 30, "document.querySelector('#members button.remove')").await;
        click(&a, "#members button.remove").await;
        until(&bb, "bob told he was removed", 90, "document.getElementById('messages').textContent.includes('no longer a member')").await;
        until(&a, "alice alone", 30, "document.querySelectorAll('#members li').length === 1").await;

        // A reload keeps the history (the daemon's store).
        a.refresh().await.unwrap();
        until(&a, "the connection after the reload", 20, "document.getElementById('connection').textContent === 'connected'").await;
        click(&a, "#groups button.group").await;
        until(&a, "the history after the reload", 20, &format!("{} && {}", shows("hi bob"), shows("hi alice"))).await;
        let png = a.screenshot().await.unwrap();
        assert!(png.starts_with(b"\x89PNG"));
        a.close().await.unwrap();
        bb.close().await.unwrap();
    });
    alice.ok(&["daemon", "--stop"]);
    bob.ok(&["daemon", "--stop"]);
}
