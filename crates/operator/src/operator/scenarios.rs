//! Reconcile scenarios against recorded exchanges. The Kubernetes API is kube's
//! `tower-test` mock: each scenario checks the requests a reconcile makes, in order, and
//! answers as an API server does. NATS is a real `nats-server` (the test plays the host,
//! answering the commands it receives), and heartbeats are fed to the shared view directly.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use super::{Config, Ctx, Error, deployments, lock, workloads};
use crate::crd::{Workload, WorkloadDeployment, WorkloadDeploymentSpec, WorkloadSpec};
use crate::leader::LeaseConfig;
use crate::replicas::FINALIZER;
use futures::StreamExt;
use hearth_cluster::protocol::{
    Capacity, Heartbeat, PROTOCOL, ReplicaCommand, ReplicaReport, ReplicaState, Reply,
    StartCommand, decode, encode, subject,
};
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{OwnerReference, Time};
use kube::client::Body;
use kube::runtime::controller::Action;
use kube::runtime::reflector;
use serde_json::{Value, json};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tower_test::mock::{Handle, SendResponse};

type ApiHandle = Handle<Request<Body>, Response<Body>>;

/// The operator's host timeout in these scenarios.
const HOST_TIMEOUT: Duration = Duration::from_secs(3);

/// A `nats-server` for one scenario. Scenarios run one at a time: a free port is found by
/// binding and releasing it, so two starting at once could pick the same one and share a
/// server that the first to finish kills.
struct NatsServer {
    child: Child,
    url: String,
    _one_at_a_time: std::sync::MutexGuard<'static, ()>,
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn nats_server() -> NatsServer {
    static ONE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let guard = ONE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let installed =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.tools/venv/bin/nats-server");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(if installed.exists() {
        installed.as_os_str()
    } else {
        "nats-server".as_ref()
    })
    .args(["-a", "127.0.0.1", "-p", &port.to_string()])
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .expect("nats-server (scripts/setup installs it)");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nats-server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    NatsServer {
        child,
        url: format!("nats://127.0.0.1:{port}"),
        _one_at_a_time: guard,
    }
}

/// An acting operator context on the mock API: caches given, NATS connected, the Lease
/// taken (its two requests answered here), host `h1` heard with `replicas`.
async fn acting(
    nats: &NatsServer,
    api: &mut ApiHandle,
    client: kube::Client,
    deployments: Vec<WorkloadDeployment>,
    replicas: Vec<ReplicaReport>,
) -> Arc<Ctx> {
    let config = Config {
        namespace: None,
        lease: LeaseConfig {
            namespace: "hearth-system".into(),
            name: "hearth-operator".into(),
            identity: "op-a".into(),
            duration: Duration::from_secs(15),
        },
        // Long enough that a loaded CI machine cannot age the heartbeat between a
        // scenario's `heard` and the reconcile acting on it (500 ms once could).
        host_timeout: HOST_TIMEOUT,
    };
    let (wd_reader, mut wd_writer) = reflector::store::<WorkloadDeployment>();
    for wd in deployments {
        wd_writer.apply_watcher_event(&kube::runtime::watcher::Event::Apply(wd));
    }
    let (wl_reader, _wl_writer) = reflector::store::<Workload>();
    let nats_client = async_nats::connect(&nats.url).await.unwrap();
    let ctx = Ctx::new(config, client, nats_client, wd_reader, wl_reader);
    ctx.synced.store(true, std::sync::atomic::Ordering::Release);
    // The Lease does not exist yet: GET answers 404, the create succeeds.
    let elect = tokio::spawn({
        let ctx = Arc::clone(&ctx);
        async move { ctx.elector.step().await.unwrap() }
    });
    let (method, path, _, send) = next(api).await;
    assert_eq!(method, Method::GET, "{path}");
    answer(
        send,
        StatusCode::NOT_FOUND,
        &json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404}),
    );
    let (method, _, body, send) = next(api).await;
    assert_eq!(method, Method::POST);
    answer(send, StatusCode::CREATED, &body);
    elect.await.unwrap();
    // Connected for longer than a host's timeout, and the host heard since.
    assert!(ctx.acting().is_err());
    tokio::time::sleep(HOST_TIMEOUT + Duration::from_millis(50)).await;
    heard(&ctx, replicas);
    assert_eq!(ctx.acting(), Ok(1));
    ctx
}

/// Returns once the server has taken the subscriptions `host` made so far, as seen from
/// the operator's connection. A `flush` only writes them out: the server reads each
/// connection on its own, so a command the operator sends next could still find no
/// subscriber (the request then fails at once with "no responders").
async fn subscribed(host: &async_nats::Client, ctx: &Ctx) {
    let probe = host.new_inbox();
    let mut heard = host.subscribe(probe.clone()).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        ctx.nats
            .publish(probe.clone(), "probe".into())
            .await
            .unwrap();
        ctx.nats.flush().await.unwrap();
        if let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(50), heard.next()).await {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the server never took the subscriptions"
        );
    }
}

/// A heartbeat of host `h1` carrying `replicas`.
fn heard(ctx: &Ctx, replicas: Vec<ReplicaReport>) {
    lock(&ctx.observed).heard(Heartbeat {
        protocol: PROTOCOL,
        host_id: "h1".into(),
        seq: 1,
        instance: "i".into(),
        version: "0.1.0".into(),
        labels: Default::default(),
        capacity: Capacity {
            cores: 2,
            max_replicas: 10,
            ..Capacity::default()
        },
        offers: Default::default(),
        http: Some("127.0.0.1:8080".into()),
        term: 0,
        replicas,
    });
}

/// The next request: method, path with query, and its JSON body (if any).
async fn next(api: &mut ApiHandle) -> (Method, String, Value, SendResponse<Response<Body>>) {
    let (request, send) = tokio::time::timeout(Duration::from_secs(10), api.next_request())
        .await
        .expect("a request within 10 s")
        .expect("a request");
    let method = request.method().clone();
    let uri = request.uri().to_string();
    let content_type = request
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let bytes = request.into_body().collect().await.unwrap().to_bytes();
    let mut body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if !content_type.is_empty() && body.is_object() {
        body["__contentType"] = json!(content_type);
    }
    (method, uri, body, send)
}

fn answer(send: SendResponse<Response<Body>>, status: StatusCode, body: &Value) {
    let mut body = body.clone();
    if let Some(map) = body.as_object_mut() {
        map.remove("__contentType");
    }
    send.send_response(
        Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Body::from(body.to_string().into_bytes()))
            .unwrap(),
    );
}

/// The object as the server answers a status apply: the object with the applied status.
fn with_status(wd: &WorkloadDeployment, applied: &Value) -> Value {
    let mut object = serde_json::to_value(wd).unwrap();
    object["status"] = applied["status"].clone();
    object
}

fn deployment(yaml: &str) -> WorkloadDeployment {
    let spec: WorkloadDeploymentSpec = serde_yaml::from_str(yaml).unwrap();
    let mut wd = WorkloadDeployment::new("web", spec);
    wd.metadata.namespace = Some("shop".into());
    wd.metadata.uid = Some("uid-web".into());
    wd.metadata.generation = Some(2);
    wd
}

const SPEC: &str = "
replicas: 1
template:
  spec:
    components:
      - name: http
        image: /srv/web.wasm
        http: { path: / }
";

const STATUS: &str = "/apis/hearth.dev/v1alpha1/namespaces/shop/workloaddeployments/web/status?&force=true&fieldManager=hearth-operator";

#[tokio::test]
async fn an_invalid_deployment_gets_the_validate_message_and_places_nothing() {
    let nats = nats_server();
    let (service, mut api) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(service, "default");
    let wd = deployment(&SPEC.replace("path: /", "path: no-slash"));
    let ctx = acting(&nats, &mut api, client, vec![wd.clone()], Vec::new()).await;

    // A fresh heartbeat: under load, the one `acting` gave may have aged past the timeout.
    heard(&ctx, Vec::new());
    let reconcile = tokio::spawn(deployments::reconcile(
        Arc::new(wd.clone()),
        Arc::clone(&ctx),
    ));
    // Server-side apply of the status, with the one field manager.
    let (method, uri, body, send) = next(&mut api).await;
    assert_eq!((method, uri.as_str()), (Method::PATCH, STATUS));
    assert_eq!(body["__contentType"], "application/apply-patch+yaml");
    let progressing = body["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Progressing")
        .unwrap();
    assert_eq!(progressing["reason"], "InvalidSpec");
    assert_eq!(progressing["observedGeneration"], 2);
    assert!(
        progressing["message"]
            .as_str()
            .unwrap()
            .starts_with("shop/web: spec.template.spec.components[0].http.path"),
        "{progressing}"
    );
    answer(send, StatusCode::OK, &with_status(&wd, &body));
    // A Warning Event about it.
    let (method, uri, event, send) = next(&mut api).await;
    assert_eq!(method, Method::POST);
    assert!(
        uri.starts_with("/apis/events.k8s.io/v1/namespaces/shop/events"),
        "{uri}"
    );
    assert_eq!(
        (event["type"].as_str(), event["reason"].as_str()),
        (Some("Warning"), Some("InvalidSpec"))
    );
    assert_eq!(event["regarding"]["name"], "web");
    answer(send, StatusCode::CREATED, &event);

    let action = reconcile.await.unwrap().unwrap();
    assert_eq!(action, Action::await_change());
}

#[tokio::test]
async fn a_new_replica_is_an_owned_object_then_a_start_with_the_term() {
    let nats = nats_server();
    let (service, mut api) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(service, "default");
    let wd = deployment(SPEC);
    let ctx = acting(&nats, &mut api, client, vec![wd.clone()], Vec::new()).await;
    // Play host h1: take the start command, answer that it is starting.
    let host = async_nats::connect(&nats.url).await.unwrap();
    let mut starts = host
        .subscribe(subject::command("h1", subject::Verb::Start))
        .await
        .unwrap();
    subscribed(&host, &ctx).await;

    // A fresh heartbeat: under load, the one `acting` gave may have aged past the timeout.
    heard(&ctx, Vec::new());
    let reconcile = tokio::spawn(deployments::reconcile(
        Arc::new(wd.clone()),
        Arc::clone(&ctx),
    ));
    let (method, uri, object, send) = next(&mut api).await;
    assert_eq!(method, Method::PATCH);
    assert!(
        uri.starts_with("/apis/hearth.dev/v1alpha1/namespaces/shop/workloads/web-"),
        "{uri}"
    );
    assert!(uri.contains("fieldManager=hearth-operator") && uri.contains("force=true"));
    assert_eq!(object["kind"], "Workload");
    let id = object["metadata"]["name"].as_str().unwrap().to_string();
    assert_eq!(object["metadata"]["ownerReferences"][0]["uid"], "uid-web");
    assert_eq!(object["metadata"]["ownerReferences"][0]["controller"], true);
    assert_eq!(object["metadata"]["finalizers"][0], FINALIZER);
    assert_eq!(object["metadata"]["labels"]["hearth.dev/deployment"], "web");
    answer(send, StatusCode::OK, &object);

    let Ok(Some(message)) = tokio::time::timeout(Duration::from_secs(5), starts.next()).await
    else {
        reconcile.abort();
        panic!("no start command within 5 s");
    };
    let start: StartCommand = decode(&message.payload).unwrap();
    assert_eq!((start.term, start.replica.as_str()), (1, id.as_str()));
    assert_eq!(start.deployment, "shop/web");
    assert_eq!(start.workload["metadata"]["name"], id.as_str());
    let report = ReplicaReport {
        id: id.clone(),
        deployment: start.deployment.clone(),
        revision: start.revision.clone(),
        state: ReplicaState::Starting,
        message: None,
        routes: Vec::new(),
    };
    host.publish(
        message.reply.unwrap(),
        encode(&Reply::Ok { replica: report }),
    )
    .await
    .unwrap();

    let (method, _, event, send) = next(&mut api).await;
    assert_eq!(method, Method::POST);
    assert_eq!(event["reason"], "Scheduled");
    assert!(
        event["note"].as_str().unwrap().contains("on host `h1`"),
        "{event}"
    );
    answer(send, StatusCode::CREATED, &event);
    // The status counts the pending replica, at the current generation.
    let (method, uri, body, send) = next(&mut api).await;
    assert_eq!((method, uri.as_str()), (Method::PATCH, STATUS));
    assert_eq!(body["status"]["replicas"], 1);
    assert_eq!(body["status"]["readyReplicas"], 0);
    assert_eq!(body["status"]["observedGeneration"], 2);
    assert_eq!(body["status"]["selector"], "hearth.dev/deployment=web");
    answer(send, StatusCode::OK, &with_status(&wd, &body));
    // Then a Progressing Event (the rollout began).
    let (_, _, event, send) = next(&mut api).await;
    assert_eq!(event["reason"], "RollingOut");
    answer(send, StatusCode::CREATED, &event);
    assert!(reconcile.await.unwrap().is_ok());
}

fn deleting_replica() -> Workload {
    let spec: WorkloadSpec =
        serde_yaml::from_str("components: [{name: http, image: /srv/web.wasm, http: {path: /}}]")
            .unwrap();
    let mut wl = Workload::new("web-x7k2p", spec);
    wl.metadata.namespace = Some("shop".into());
    wl.metadata.uid = Some("uid-replica".into());
    wl.metadata.finalizers = Some(vec![FINALIZER.into()]);
    wl.metadata.deletion_timestamp = Some(Time(k8s_openapi::jiff::Timestamp::now()));
    wl.metadata.owner_references = Some(vec![OwnerReference {
        api_version: "hearth.dev/v1alpha1".into(),
        kind: "WorkloadDeployment".into(),
        name: "web".into(),
        uid: "uid-web".into(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }]);
    wl
}

#[tokio::test]
async fn a_deleted_replica_is_stopped_on_its_host_before_its_finalizer_goes() {
    let nats = nats_server();
    let (service, mut api) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(service, "default");
    let running = ReplicaReport {
        id: "web-x7k2p".into(),
        deployment: "shop/web".into(),
        revision: "r1".into(),
        state: ReplicaState::Ready,
        message: None,
        routes: Vec::new(),
    };
    let ctx = acting(&nats, &mut api, client, Vec::new(), vec![running.clone()]).await;
    let host = async_nats::connect(&nats.url).await.unwrap();
    let mut stops = host
        .subscribe(subject::command("h1", subject::Verb::Stop))
        .await
        .unwrap();
    subscribed(&host, &ctx).await;
    let wl = Arc::new(deleting_replica());

    // The host still runs it: a stop goes out, and the finalizer stays.
    heard(&ctx, vec![running.clone()]);
    let reconcile = tokio::spawn(workloads::reconcile(Arc::clone(&wl), Arc::clone(&ctx)));
    let Ok(Some(message)) = tokio::time::timeout(Duration::from_secs(5), stops.next()).await else {
        panic!("no stop command; the reconcile gave {:?}", reconcile.await);
    };
    let stop: ReplicaCommand = decode(&message.payload).unwrap();
    assert_eq!((stop.term, stop.replica.as_str()), (1, "web-x7k2p"));
    let stopping = ReplicaReport {
        state: ReplicaState::Stopping,
        ..running
    };
    host.publish(
        message.reply.unwrap(),
        encode(&Reply::Ok { replica: stopping }),
    )
    .await
    .unwrap();
    let result = reconcile.await.unwrap();
    assert!(matches!(result, Err(Error::Stopping { .. })), "{result:?}");

    // The host no longer reports it: the finalizer is removed (a JSON patch that first
    // tests it is still there), and no other request is made.
    heard(&ctx, Vec::new());
    let reconcile = tokio::spawn(workloads::reconcile(wl, Arc::clone(&ctx)));
    let (method, uri, patch, send) = next(&mut api).await;
    assert_eq!(method, Method::PATCH);
    assert_eq!(
        uri,
        "/apis/hearth.dev/v1alpha1/namespaces/shop/workloads/web-x7k2p?"
    );
    let ops = patch.as_array().expect("a JSON patch");
    assert!(
        ops.iter()
            .any(|op| op["op"] == "test" && op["value"] == FINALIZER),
        "{patch}"
    );
    assert!(
        ops.iter()
            .any(|op| op["op"] == "remove" && op["path"] == "/metadata/finalizers/0"),
        "{patch}"
    );
    let mut released = serde_json::to_value(deleting_replica()).unwrap();
    released["metadata"]["finalizers"] = json!([]);
    answer(send, StatusCode::OK, &released);
    assert!(reconcile.await.unwrap().is_ok());
    assert!(
        tokio::time::timeout(Duration::from_millis(200), api.next_request())
            .await
            .is_err(),
        "no further request"
    );
}
