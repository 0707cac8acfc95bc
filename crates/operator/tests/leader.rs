//! Leader election against recorded API exchanges (kube's `tower-test` mock service): each
//! scenario checks the exact requests the elector makes and feeds it the answers a real API
//! server gives.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use bytes::Bytes;
use hearth_operator::leader::{Change, Elector, LeaseConfig};
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use kube::client::Body;
use serde_json::{Value, json};
use std::time::Duration;
use tower_test::mock::{Handle, SendResponse};

type ApiHandle = Handle<Request<Body>, Response<Body>>;

fn elector(duration: Duration) -> (Elector, ApiHandle) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(service, "default");
    let config = LeaseConfig {
        namespace: "hearth-system".into(),
        name: "hearth-operator".into(),
        identity: "op-a".into(),
        duration,
    };
    (Elector::new(client, config), handle)
}

const LEASE_PATH: &str = "/apis/coordination.k8s.io/v1/namespaces/hearth-system/leases";

/// The next request: method, path and JSON body (if any), and its responder.
async fn next(handle: &mut ApiHandle) -> (Method, String, Value, SendResponse<Response<Body>>) {
    let (request, send) = handle.next_request().await.expect("a request");
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let bytes = request.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (method, path, body, send)
}

fn answer(send: SendResponse<Response<Body>>, status: StatusCode, body: &Value) {
    let response = Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::from(Bytes::from(body.to_string())))
        .unwrap();
    send.send_response(response);
}

fn not_found(send: SendResponse<Response<Body>>) {
    answer(
        send,
        StatusCode::NOT_FOUND,
        &json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "message": "leases.coordination.k8s.io \"hearth-operator\" not found"}),
    );
}

fn conflict(send: SendResponse<Response<Body>>) {
    answer(
        send,
        StatusCode::CONFLICT,
        &json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Conflict", "code": 409, "message": "Operation cannot be fulfilled on leases.coordination.k8s.io \"hearth-operator\": the object has been modified; please apply your changes to the latest version and try again"}),
    );
}

fn lease(holder: Option<&str>, version: &str, transitions: i32) -> Value {
    json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "hearth-operator", "namespace": "hearth-system", "resourceVersion": version},
        "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15, "leaseTransitions": transitions,
                 "renewTime": "2026-12-02T08:00:00.000000Z"},
    })
}

#[tokio::test]
async fn a_missing_lease_is_created_and_held_with_term_one() {
    let (elector, mut api) = elector(Duration::from_secs(15));
    let server = tokio::spawn(async move {
        let (method, path, _, send) = next(&mut api).await;
        assert_eq!(
            (method, path.as_str()),
            (Method::GET, &*format!("{LEASE_PATH}/hearth-operator"))
        );
        not_found(send);
        let (method, path, body, send) = next(&mut api).await;
        assert_eq!((method, path.as_str()), (Method::POST, LEASE_PATH));
        assert_eq!(body["spec"]["holderIdentity"], "op-a");
        assert_eq!(body["spec"]["leaseDurationSeconds"], 15);
        assert_eq!(body["spec"]["leaseTransitions"], 0);
        assert!(body["spec"]["renewTime"].is_string());
        answer(send, StatusCode::CREATED, &body);
    });
    assert_eq!(
        elector.step().await.unwrap(),
        Change::Took {
            term: 1,
            previous: None
        }
    );
    server.await.unwrap();
    assert_eq!(elector.acting_term(), Some(1));
}

#[tokio::test]
async fn a_lease_renewed_by_another_is_left_alone_and_a_stale_one_is_taken() {
    let (elector, mut api) = elector(Duration::from_millis(300));
    let server = tokio::spawn(async move {
        // Held and renewed: the resourceVersion moves between reads.
        for version in ["10", "11"] {
            let (method, _, _, send) = next(&mut api).await;
            assert_eq!(method, Method::GET);
            answer(send, StatusCode::OK, &lease(Some("op-b"), version, 2));
        }
        // Then it stops moving for longer than the Lease: a takeover, naming the version read.
        for _ in 0..2 {
            let (method, _, _, send) = next(&mut api).await;
            assert_eq!(method, Method::GET);
            answer(send, StatusCode::OK, &lease(Some("op-b"), "11", 2));
        }
        let (method, path, body, send) = next(&mut api).await;
        assert_eq!(
            (method, path.as_str()),
            (Method::PUT, &*format!("{LEASE_PATH}/hearth-operator"))
        );
        assert_eq!(body["metadata"]["resourceVersion"], "11");
        assert_eq!(body["spec"]["holderIdentity"], "op-a");
        assert_eq!(body["spec"]["leaseTransitions"], 3);
        assert!(body["spec"]["acquireTime"].is_string());
        answer(send, StatusCode::OK, &body);
    });
    assert_eq!(elector.step().await.unwrap(), Change::None);
    assert_eq!(elector.step().await.unwrap(), Change::None);
    assert_eq!(elector.acting_term(), None);
    assert_eq!(elector.step().await.unwrap(), Change::None, "not stale yet");
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(
        elector.step().await.unwrap(),
        Change::Took {
            term: 4,
            previous: Some("op-b".into())
        }
    );
    server.await.unwrap();
    assert_eq!(elector.acting_term(), Some(4));
}

#[tokio::test]
async fn losing_a_race_for_the_lease_leaves_this_operator_standing_by() {
    let (elector, mut api) = elector(Duration::from_secs(15));
    let server = tokio::spawn(async move {
        // A released Lease (no holder) is free at once; another standby writes first.
        let (_, _, _, send) = next(&mut api).await;
        answer(send, StatusCode::OK, &lease(None, "20", 5));
        let (method, _, body, send) = next(&mut api).await;
        assert_eq!(method, Method::PUT);
        assert_eq!(body["metadata"]["resourceVersion"], "20");
        conflict(send);
    });
    assert_eq!(elector.step().await.unwrap(), Change::None);
    server.await.unwrap();
    assert_eq!(elector.acting_term(), None);
}

#[tokio::test]
async fn a_leader_whose_renewal_conflicts_stops_acting_at_once() {
    let (elector, mut api) = elector(Duration::from_secs(15));
    let server = tokio::spawn(async move {
        let (_, _, _, send) = next(&mut api).await;
        answer(send, StatusCode::OK, &lease(Some("op-a"), "30", 1));
        let (method, _, body, send) = next(&mut api).await;
        assert_eq!(method, Method::PUT);
        assert_eq!(
            body["spec"]["leaseTransitions"], 1,
            "a renewal is no transition"
        );
        answer(send, StatusCode::OK, &body);
        // Next renewal: someone else wrote the Lease in between.
        let (_, _, _, send) = next(&mut api).await;
        answer(send, StatusCode::OK, &lease(Some("op-a"), "31", 1));
        let (method, _, _, send) = next(&mut api).await;
        assert_eq!(method, Method::PUT);
        conflict(send);
    });
    assert!(matches!(
        elector.step().await.unwrap(),
        Change::Took { term: 2, .. }
    ));
    assert_eq!(elector.acting_term(), Some(2));
    assert!(matches!(elector.step().await.unwrap(), Change::Lost { .. }));
    assert_eq!(elector.acting_term(), None);
    server.await.unwrap();
}

#[tokio::test]
async fn releasing_clears_the_holder_so_a_standby_need_not_wait() {
    let (elector, mut api) = elector(Duration::from_secs(15));
    let server = tokio::spawn(async move {
        let (_, _, _, send) = next(&mut api).await;
        not_found(send);
        let (_, _, body, send) = next(&mut api).await;
        answer(send, StatusCode::CREATED, &body);
        let (method, _, _, send) = next(&mut api).await;
        assert_eq!(method, Method::GET);
        answer(send, StatusCode::OK, &lease(Some("op-a"), "40", 0));
        let (method, _, body, send) = next(&mut api).await;
        assert_eq!(method, Method::PUT);
        assert!(body["spec"]["holderIdentity"].is_null(), "{body}");
        answer(send, StatusCode::OK, &body);
    });
    elector.step().await.unwrap();
    elector.release().await.unwrap();
    assert_eq!(elector.acting_term(), None);
    server.await.unwrap();
}
