//! The mock server itself: it answers and records.
use crate::support;
use support::{Answer, MockServer};

#[tokio::test]
async fn mock_server_records_and_answers() {
    let server = MockServer::start(|r| {
        if r.path() == "/ok" {
            Answer::json(200, serde_json::json!({"a": 1})).header("x-test", "1")
        } else {
            Answer::text(404, "text/plain", "nope")
        }
    })
    .await;
    let client = reqwest::Client::new();
    let resp = client
        .post(format!("{}/ok", server.url()))
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-test"], "1");
    let resp = client
        .get(format!("{}/other", server.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let reqs = server.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].body_text(), "hello");
    server.assert_safe(&[("DELETE", "/")], "never-sent");
}
