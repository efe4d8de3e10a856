//! Kubernetes manifests for the example fleet: byte-for-byte golden files,
//! determinism, the shape the issue asks for, `kubectl kustomize` rendering
//! and strict schema validation against Kubernetes 1.32, plus the proof that
//! a tenant's cluster agent keeps only its own kube-state-metrics series.
//!
//! `OUTPOST_UPDATE_GOLDEN=1 cargo test -p outpost-compiler --test manifests`
//! rewrites examples/manifests/ after an intended change.

use k8s_openapi::api::core::v1::ConfigMap;
use outpost_compiler::manifests::{self, image, ManifestError, ManifestFile};
use outpost_compiler::{analyze, load_spec, AgentPlan, Fleet};
use outpost_core::expfmt::{ExpositionFormat, Parser};
use outpost_core::labels::LabelSet;
use outpost_core::plan::Role;
use outpost_core::relabel::RelabelProgram;
use outpost_test_support::{golden_tree, repo_path};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

fn example() -> (Fleet, Vec<AgentPlan>) {
    let a = load_spec(&repo_path("examples/fleet.yaml")).unwrap();
    assert!(!a.has_errors(), "{}", a.render_text(100));
    (a.fleet.unwrap(), a.plans)
}

fn render_example() -> Vec<ManifestFile> {
    let (fleet, plans) = example();
    manifests::render(&fleet, &plans, &image::resolve(&fleet, None, None).unwrap()).unwrap()
}

fn render_text(name: &str, text: &str) -> Result<Vec<ManifestFile>, ManifestError> {
    let a = analyze(name, text);
    assert!(!a.has_errors(), "{}", a.render_text(100));
    let fleet = a.fleet.as_ref().unwrap();
    manifests::render(fleet, &a.plans, &image::resolve(fleet, None, None).unwrap())
}

/// The example's own image line, as the spec writes it.
fn example_image() -> String {
    let text = std::fs::read_to_string(repo_path("examples/fleet.yaml")).unwrap();
    let line = text.lines().find_map(|l| l.strip_prefix("image: ")).unwrap();
    line.to_string()
}

/// Every document of a multi-document YAML text.
fn documents(text: &str) -> Vec<Value> {
    let mut docs = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        if line == "---" {
            if !current.trim().is_empty() {
                docs.push(serde_saphyr::from_str(&current).unwrap());
            }
            current.clear();
        } else {
            current.push_str(line);
            current.push('\n');
        }
    }
    if !current.trim().is_empty() {
        docs.push(serde_saphyr::from_str(&current).unwrap());
    }
    docs
}

/// All objects of one cluster, from every resource file.
fn cluster_objects(files: &[ManifestFile], cluster: &str) -> Vec<Value> {
    files
        .iter()
        .filter(|f| f.path.starts_with(cluster) && !f.path.ends_with("kustomization.yaml"))
        .flat_map(|f| documents(&f.contents))
        .collect()
}

fn find<'a>(objects: &'a [Value], kind: &str, namespace: Option<&str>, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| {
            o["kind"] == kind
                && o["metadata"]["name"] == name
                && o["metadata"]["namespace"].as_str() == namespace
        })
        .unwrap_or_else(|| panic!("no {kind} {namespace:?}/{name}"))
}

fn kinds(objects: &[Value]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for o in objects {
        *counts.entry(o["kind"].as_str().unwrap().to_string()).or_insert(0) += 1;
    }
    counts
}

fn golden_dir() -> PathBuf {
    repo_path("examples/manifests")
}

#[test]
fn golden_manifests_match_the_committed_files_byte_for_byte() {
    let files = render_example();
    let dir = golden_dir();
    if std::env::var_os("OUTPOST_UPDATE_GOLDEN").is_some() {
        for cluster in std::fs::read_dir(&dir).into_iter().flatten() {
            let cluster = cluster.unwrap().path();
            if cluster.is_dir() {
                std::fs::remove_dir_all(&cluster).unwrap();
            }
        }
        manifests::write_files(&files, &dir).unwrap();
    }
    let expected: BTreeSet<PathBuf> = files.iter().map(|f| f.path.clone()).collect();
    assert_eq!(
        golden_tree(&dir).into_keys().collect::<BTreeSet<_>>(),
        expected,
        "examples/manifests holds other files than the renderer writes; \
         rerun with OUTPOST_UPDATE_GOLDEN=1 after an intended change"
    );
    for f in &files {
        let committed = std::fs::read_to_string(dir.join(&f.path)).unwrap();
        assert!(
            committed == f.contents,
            "examples/manifests/{} differs from the rendered manifest; \
             rerun with OUTPOST_UPDATE_GOLDEN=1 after an intended change",
            f.path.display()
        );
    }
}

#[test]
fn rendering_twice_gives_the_same_bytes_and_file_order() {
    let first = render_example();
    let second = render_example();
    assert_eq!(first, second);
    let paths: Vec<String> = first.iter().map(|f| f.path.display().to_string()).collect();
    assert_eq!(
        paths,
        [
            "cluster-03/kustomization.yaml",
            "cluster-03/namespaces.yaml",
            "cluster-03/kube-state-metrics.yaml",
            "cluster-03/outpost-rbac.yaml",
            "cluster-03/outpost-monitoring.yaml",
            "cluster-04/kustomization.yaml",
            "cluster-04/namespaces.yaml",
            "cluster-04/kube-state-metrics.yaml",
            "cluster-04/outpost-rbac.yaml",
            "cluster-04/outpost-monitoring.yaml",
            "cluster-02/kustomization.yaml",
            "cluster-02/namespaces.yaml",
            "cluster-02/kube-state-metrics.yaml",
            "cluster-02/outpost-rbac.yaml",
            "cluster-02/outpost-monitoring-tenant-a.yaml",
            "cluster-02/outpost-monitoring-tenant-b.yaml",
        ]
    );
    let kustomization: Value = serde_saphyr::from_str(&first[10].contents).unwrap();
    assert_eq!(
        kustomization["resources"],
        serde_json::json!([
            "namespaces.yaml",
            "kube-state-metrics.yaml",
            "outpost-rbac.yaml",
            "outpost-monitoring-tenant-a.yaml",
            "outpost-monitoring-tenant-b.yaml"
        ])
    );
}

#[test]
fn each_cluster_gets_its_namespaces_ksm_and_one_agent_pair_per_tenant() {
    let files = render_example();
    let single = cluster_objects(&files, "cluster-03");
    assert_eq!(
        kinds(&single),
        BTreeMap::from([
            ("ClusterRole".to_string(), 2),
            ("ClusterRoleBinding".to_string(), 2),
            ("ConfigMap".to_string(), 2),
            ("DaemonSet".to_string(), 1),
            ("Deployment".to_string(), 1),
            ("Namespace".to_string(), 1),
            ("Service".to_string(), 2),
            ("ServiceAccount".to_string(), 2),
            ("StatefulSet".to_string(), 1),
        ])
    );
    let multi = cluster_objects(&files, "cluster-02");
    let namespaces: Vec<&str> = multi
        .iter()
        .filter(|o| o["kind"] == "Namespace")
        .map(|o| o["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        namespaces,
        ["monitoring", "monitoring-tenant-a", "monitoring-tenant-b"]
    );
    assert_eq!(kinds(&multi)["DaemonSet"], 2);
    assert_eq!(kinds(&multi)["StatefulSet"], 2);
    // One shared KSM, in `monitoring`.
    assert_eq!(kinds(&multi)["Deployment"], 1);
    find(&multi, "Deployment", Some("monitoring"), "kube-state-metrics");
    // Only the tenants' cluster agents may read the shared KSM's unfiltered series.
    let policy = find(&multi, "NetworkPolicy", Some("monitoring"), "kube-state-metrics");
    assert_eq!(policy["spec"]["policyTypes"], serde_json::json!(["Ingress"]));
    let from = &policy["spec"]["ingress"][0]["from"];
    assert_eq!(from.as_array().unwrap().len(), 1);
    assert_eq!(
        from[0]["namespaceSelector"]["matchExpressions"][0]["values"],
        serde_json::json!(["monitoring-tenant-a", "monitoring-tenant-b"])
    );
    assert_eq!(
        from[0]["podSelector"]["matchLabels"]["app.kubernetes.io/component"],
        "cluster-agent"
    );
    assert!(!kinds(&single).contains_key("NetworkPolicy"));
    // Secrets are referenced, never generated.
    for f in &files {
        assert!(
            !f.contents.contains("kind: Secret"),
            "{} generates a Secret",
            f.path.display()
        );
    }
}

#[test]
fn tenant_node_agent_is_pinned_mounted_probed_and_locked_down() {
    let files = render_example();
    let objects = cluster_objects(&files, "cluster-02");
    let ds = find(&objects, "DaemonSet", Some("monitoring-tenant-a"), "outpost-node");
    let pod = &ds["spec"]["template"]["spec"];
    assert_eq!(
        pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
            ["nodeSelectorTerms"],
        serde_json::json!([{"matchExpressions": [{"key": "tenant", "operator": "In", "values": ["tenant-a"]}]}])
    );
    let container = &pod["containers"][0];
    assert_eq!(
        container["args"],
        serde_json::json!([
            "run",
            "--plan",
            "/etc/outpost/node.plan",
            "--path.procfs",
            "/host/proc",
            "--path.sysfs",
            "/host/sys",
            "--path.rootfs",
            "/host/root",
            "--wal-lock-wait",
            "30s",
            "--listen",
            "0.0.0.0:9090"
        ])
    );
    let env: BTreeMap<&str, &str> = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap(),
                e["valueFrom"]["fieldRef"]["fieldPath"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        env,
        BTreeMap::from([("NODE_IP", "status.hostIP"), ("NODE_NAME", "spec.nodeName")])
    );
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/-/healthy");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/-/ready");
    let sc = &container["securityContext"];
    assert_eq!(sc["runAsNonRoot"], true);
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["capabilities"]["drop"], serde_json::json!(["ALL"]));
    assert!(sc["capabilities"].get("add").is_none());
    assert_eq!(pod["securityContext"]["runAsUser"], 65534);
    // The example's node_resources.
    assert_eq!(
        container["resources"],
        serde_json::json!({"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": "200m", "memory": "160Mi"}})
    );

    let volumes: BTreeMap<&str, &Value> = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["name"].as_str().unwrap(), v))
        .collect();
    let mounts: BTreeMap<&str, &Value> = container["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["name"].as_str().unwrap(), m))
        .collect();
    for (name, host, inside) in [
        ("host-proc", "/proc", "/host/proc"),
        ("host-sys", "/sys", "/host/sys"),
        ("host-root", "/", "/host/root"),
    ] {
        assert_eq!(volumes[name]["hostPath"]["path"], host);
        assert_eq!(mounts[name]["mountPath"], inside);
        assert_eq!(mounts[name]["readOnly"], true, "{name}");
    }
    // The textfile collector's directory: the host's, read-only, where the plan reads it.
    let textfile = "/var/lib/node_exporter/textfile_collector";
    assert_eq!(volumes["textfile"]["hostPath"]["path"], textfile);
    assert_eq!(volumes["textfile"]["hostPath"]["type"], "DirectoryOrCreate");
    assert_eq!(mounts["textfile"]["mountPath"], textfile);
    assert_eq!(mounts["textfile"]["readOnly"], true);
    // The WAL is on the node, in a directory of this namespace, at the plan's path.
    assert_eq!(
        volumes["wal"]["hostPath"]["path"],
        "/var/lib/outpost/monitoring-tenant-a"
    );
    assert_eq!(mounts["wal"]["mountPath"], "/var/lib/outpost/node-wal");
    assert!(mounts["wal"].get("readOnly").is_none());
    // mTLS material from the operator's Secret, where the plan reads it.
    assert_eq!(volumes["outpost-tls"]["secret"]["secretName"], "outpost-tls");
    let keys: Vec<&str> = volumes["outpost-tls"]["secret"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["ca.crt", "client.crt", "client.key"]);
    assert_eq!(mounts["outpost-tls"]["mountPath"], "/etc/outpost/tls");
    // kubelet scrapes use the ServiceAccount token, bound to nodes/metrics.
    assert_eq!(pod["automountServiceAccountToken"], true);
    let binding = find(&objects, "ClusterRoleBinding", None, "outpost-kubelet-metrics");
    let subjects: Vec<&str> = binding["subjects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["namespace"].as_str().unwrap())
        .collect();
    assert_eq!(subjects, ["monitoring-tenant-a", "monitoring-tenant-b"]);
    // The WAL owner fix-up is the only root process, with CHOWN alone, and
    // it is the agent's own image: a site mirrors no second image for it.
    let init = &pod["initContainers"][0];
    assert_eq!(pod["initContainers"].as_array().unwrap().len(), 1);
    assert_eq!(init["image"], container["image"]);
    assert!(init.get("command").is_none(), "the image's entrypoint runs");
    assert_eq!(
        init["args"],
        serde_json::json!([
            "chown-wal",
            "--wal-dir",
            "/var/lib/outpost/node-wal",
            "--owner",
            "65534:65534"
        ])
    );
    assert_eq!(init["securityContext"]["runAsUser"], 0);
    assert_eq!(init["securityContext"]["runAsNonRoot"], false);
    assert_eq!(init["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(
        init["securityContext"]["capabilities"]["add"],
        serde_json::json!(["CHOWN"])
    );
    assert_eq!(
        init["securityContext"]["capabilities"]["drop"],
        serde_json::json!(["ALL"])
    );
    let init_mounts = init["volumeMounts"].as_array().unwrap();
    assert_eq!(init_mounts.len(), 1);
    assert_eq!(init_mounts[0]["name"], "wal");
    assert_eq!(init_mounts[0]["mountPath"], "/var/lib/outpost/node-wal");
}

/// The image of every container, init containers too, one entry each.
fn container_images(objects: &[Value]) -> Vec<String> {
    let mut out = Vec::new();
    for o in objects {
        let pod = &o["spec"]["template"]["spec"];
        for list in ["initContainers", "containers"] {
            for c in pod[list].as_array().into_iter().flatten() {
                out.push(c["image"].as_str().unwrap().to_string());
            }
        }
    }
    out
}

fn images(objects: &[Value]) -> BTreeSet<String> {
    container_images(objects).into_iter().collect()
}

#[test]
fn the_only_images_are_the_spec_s_outpost_and_ksm_both_pinned_by_digest() {
    let files = render_example();
    let outpost = example_image();
    assert!(
        outpost.starts_with("ghcr.io/outpost/outpost:0.1.0@sha256:") && outpost.len() == 37 + 64,
        "{outpost}"
    );
    for cluster in ["cluster-02", "cluster-03", "cluster-04"] {
        let objects = cluster_objects(&files, cluster);
        assert_eq!(
            images(&objects),
            BTreeSet::from([outpost.clone(), manifests::ksm::KSM_IMAGE.to_string()]),
            "{cluster}"
        );
    }
    let ksm = image::parse(manifests::ksm::KSM_IMAGE).unwrap();
    assert_eq!(ksm.tag.as_deref(), Some(manifests::ksm::KSM_VERSION));
    assert!(ksm.digest.is_some());
    // Nothing else names an image: no tag-only reference slipped in.
    for f in &files {
        for line in f
            .contents
            .lines()
            .filter(|l| l.trim_start().starts_with("image:"))
        {
            assert!(line.contains("@sha256:"), "{}: {line}", f.path.display());
        }
    }
}

#[test]
fn the_image_given_on_the_command_line_replaces_the_spec_s() {
    let (fleet, plans) = example();
    let digest = format!("sha256:{}", "ab".repeat(32));
    let pinned = image::resolve(
        &fleet,
        Some("registry.example.net/edge/outpost:1.2.3"),
        Some(&digest),
    )
    .unwrap();
    let files = manifests::render(&fleet, &plans, &pinned).unwrap();
    let expected = format!("registry.example.net/edge/outpost:1.2.3@{digest}");
    let objects = cluster_objects(&files, "cluster-02");
    assert_eq!(
        images(&objects),
        BTreeSet::from([expected.clone(), manifests::ksm::KSM_IMAGE.to_string()])
    );
    // Four agents and two WAL init containers run it in cluster-02.
    let runs = container_images(&objects);
    assert_eq!(runs.iter().filter(|i| **i == expected).count(), 6, "{runs:?}");
    assert!(!files.iter().any(|f| f.contents.contains(&example_image())));
}

#[test]
fn cluster_agent_is_one_replica_on_the_seeds_longhorn_claim() {
    let files = render_example();
    let objects = cluster_objects(&files, "cluster-03");
    let sts = find(&objects, "StatefulSet", Some("monitoring"), "outpost-cluster");
    assert_eq!(sts["spec"]["replicas"], 1);
    assert_eq!(sts["spec"]["serviceName"], "outpost-cluster");
    find(&objects, "Service", Some("monitoring"), "outpost-cluster");
    let claim = &sts["spec"]["volumeClaimTemplates"][0];
    assert_eq!(claim["spec"]["storageClassName"], "longhorn");
    assert_eq!(claim["spec"]["resources"]["requests"]["storage"], "50Gi");
    let pod = &sts["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    assert_eq!(
        container["args"],
        serde_json::json!([
            "run",
            "--plan",
            "/etc/outpost/cluster.plan",
            "--listen",
            "0.0.0.0:9090"
        ])
    );
    assert_eq!(
        container["resources"],
        serde_json::json!({"requests": {"cpu": "200m", "memory": "256Mi"}, "limits": {"cpu": "500m", "memory": "512Mi"}})
    );
    assert!(
        pod.get("affinity").is_none(),
        "a single-tenant cluster agent runs anywhere"
    );
    assert_eq!(pod["automountServiceAccountToken"], false);
    assert_eq!(pod["securityContext"]["fsGroup"], 65534);

    // In cluster-02 each tenant's cluster agent runs on that tenant's nodes.
    let multi = cluster_objects(&files, "cluster-02");
    let sts_b = find(
        &multi,
        "StatefulSet",
        Some("monitoring-tenant-b"),
        "outpost-cluster",
    );
    assert_eq!(
        sts_b["spec"]["template"]["spec"]["affinity"]["nodeAffinity"]
            ["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0]["matchExpressions"][0]
            ["values"],
        serde_json::json!(["tenant-b"])
    );
}

#[test]
fn plan_config_maps_carry_the_plan_bytes_and_the_pods_their_hash() {
    let (_, plans) = example();
    let files = render_example();
    for agent in &plans {
        let namespace = match &agent.tenant {
            Some(t) => format!("monitoring-{t}"),
            None => "monitoring".to_string(),
        };
        let objects = cluster_objects(&files, &agent.cluster);
        let role = agent.role.as_str();
        let cm: ConfigMap = serde_json::from_value(
            find(
                &objects,
                "ConfigMap",
                Some(&namespace),
                &format!("outpost-{role}-plan"),
            )
            .clone(),
        )
        .unwrap();
        let stored = &cm.binary_data.as_ref().unwrap()[&format!("{role}.plan")].0;
        assert_eq!(*stored, outpost_core::plan::encode(&agent.plan).unwrap());
        assert_eq!(outpost_core::plan::decode(stored).unwrap(), agent.plan);
        let kind = if agent.role == Role::Node {
            "DaemonSet"
        } else {
            "StatefulSet"
        };
        let workload = find(&objects, kind, Some(&namespace), &format!("outpost-{role}"));
        assert_eq!(
            workload["spec"]["template"]["metadata"]["annotations"]["checksum/plan"],
            manifests::sha256_hex(stored)
        );
    }
}

fn pod_checksums(files: &[ManifestFile]) -> Vec<String> {
    files
        .iter()
        .flat_map(|f| documents(&f.contents))
        .filter(|o| o["kind"] == "DaemonSet" || o["kind"] == "StatefulSet")
        .map(|o| {
            o["spec"]["template"]["metadata"]["annotations"]["checksum/plan"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

#[test]
fn a_plan_change_changes_the_pod_template_hash_and_nothing_else_rolls() {
    let text = std::fs::read_to_string(repo_path("examples/fleet.yaml")).unwrap();
    let before = render_text("fleet.yaml", &text).unwrap();
    // Only the cluster-scope KSM job changes: only cluster agents must roll.
    let changed = text.replace(
        "    targets: [\"kube-state-metrics.monitoring.svc:8080\"]\n",
        "    targets: [\"kube-state-metrics.monitoring.svc:8080\"]\n    interval: 60s\n",
    );
    assert_ne!(changed, text);
    let after = render_text("fleet.yaml", &changed).unwrap();
    let (b, a) = (pod_checksums(&before), pod_checksums(&after));
    assert_eq!(b.len(), 8);
    let kinds: Vec<String> = before
        .iter()
        .flat_map(|f| documents(&f.contents))
        .filter(|o| o["kind"] == "DaemonSet" || o["kind"] == "StatefulSet")
        .map(|o| o["kind"].as_str().unwrap().to_string())
        .collect();
    for ((kind, old), new) in kinds.iter().zip(&b).zip(&a) {
        match kind.as_str() {
            "StatefulSet" => assert_ne!(old, new, "a cluster plan changed but its pods would not roll"),
            _ => assert_eq!(old, new, "a node plan did not change but its pods would roll"),
        }
    }
}

#[test]
fn ksm_has_the_rbac_for_every_resource_it_exposes_and_no_secrets() {
    let files = render_example();
    let objects = cluster_objects(&files, "cluster-04");
    let deployment = find(&objects, "Deployment", Some("monitoring"), "kube-state-metrics");
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "kube-state-metrics");
    let container = &pod["containers"][0];
    assert_eq!(
        container["image"],
        "registry.k8s.io/kube-state-metrics/kube-state-metrics:v2.15.0\
         @sha256:db384bf43222b066c378e77027a675d4cd9911107adba46c2922b3a55e10d6fb"
    );
    let args = container["args"].as_array().unwrap();
    let resources: BTreeSet<&str> = args
        .iter()
        .find_map(|a| a.as_str().unwrap().strip_prefix("--resources="))
        .unwrap()
        .split(',')
        .collect();
    assert!(!resources.contains("secrets"));
    assert!(resources.contains("pods") && resources.contains("nodes") && resources.contains("namespaces"));
    let role = find(&objects, "ClusterRole", None, "kube-state-metrics");
    let mut granted = BTreeSet::new();
    for rule in role["rules"].as_array().unwrap() {
        assert_eq!(rule["verbs"], serde_json::json!(["list", "watch"]));
        for r in rule["resources"].as_array().unwrap() {
            granted.insert(r.as_str().unwrap());
        }
    }
    assert_eq!(granted, resources);
    let binding = find(&objects, "ClusterRoleBinding", None, "kube-state-metrics");
    assert_eq!(
        binding["subjects"],
        serde_json::json!([{"kind": "ServiceAccount", "name": "kube-state-metrics", "namespace": "monitoring"}])
    );
    find(
        &objects,
        "ServiceAccount",
        Some("monitoring"),
        "kube-state-metrics",
    );
    // The plans scrape `kube-state-metrics.monitoring.svc:8080`.
    let service = find(&objects, "Service", Some("monitoring"), "kube-state-metrics");
    assert_eq!(service["spec"]["ports"][0]["port"], 8080);
}

#[test]
fn a_secret_file_beside_the_plan_is_refused_with_its_place() {
    let text = std::fs::read_to_string(repo_path("examples/fleet.yaml")).unwrap();
    let changed = text.replace("/etc/outpost/tls/ca.crt", "/etc/outpost/ca.crt");
    assert_ne!(changed, text);
    let err = render_text("fleet.yaml", &changed).unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, ManifestError::BadSecretPath { .. }), "{message}");
    assert!(message.contains("cluster-03/node.plan"), "{message}");
    assert!(message.contains("/etc/outpost/ca.crt"), "{message}");
    assert!(message.contains("/etc/outpost/tls"), "{message}");
}

fn kubectl_kustomize(dir: &Path) -> String {
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(dir)
        .output()
        .expect("kubectl is installed (/usr/bin/kubectl)");
    assert!(
        out.status.success(),
        "kubectl kustomize {} failed: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `kubectl kustomize` output per cluster, from the files as written to disk.
fn kustomize_files(files: &[ManifestFile]) -> Vec<(String, String)> {
    let dir = tempfile::tempdir().unwrap();
    manifests::write_files(files, dir.path()).unwrap();
    let clusters: BTreeSet<PathBuf> = files
        .iter()
        .map(|f| f.path.parent().unwrap().to_path_buf())
        .collect();
    clusters
        .into_iter()
        .map(|cluster| {
            let rendered = kubectl_kustomize(&dir.path().join(&cluster));
            (cluster.display().to_string(), rendered)
        })
        .collect()
}

fn kustomize_all() -> Vec<(String, String)> {
    kustomize_files(&render_example())
}

#[test]
fn a_cluster_directory_works_as_a_kustomize_base() {
    let files = render_example();
    let dir = tempfile::tempdir().unwrap();
    manifests::write_files(&files, &dir.path().join("base")).unwrap();
    let overlay = dir.path().join("overlay");
    std::fs::create_dir(&overlay).unwrap();
    // A site that mirrors the two images into its own registry renames
    // them; the digests, and so the bytes that run, stay.
    std::fs::write(
        overlay.join("kustomization.yaml"),
        "resources: [../base/cluster-03]\n\
         images:\n- name: ghcr.io/outpost/outpost\n  newName: registry.example.net/outpost\n\
         - name: registry.k8s.io/kube-state-metrics/kube-state-metrics\n  newName: registry.example.net/kube-state-metrics\n",
    )
    .unwrap();
    let rendered = kubectl_kustomize(&overlay);
    assert!(!rendered.contains("ghcr.io/outpost/outpost"));
    assert!(!rendered.contains("registry.k8s.io"));
    let outpost = example_image().replace("ghcr.io/outpost/outpost", "registry.example.net/outpost");
    // The node agent, its WAL init container and the cluster agent.
    assert_eq!(rendered.matches(&format!("image: {outpost}\n")).count(), 3);
    let ksm = manifests::ksm::KSM_IMAGE.replace(
        "registry.k8s.io/kube-state-metrics/kube-state-metrics",
        "registry.example.net/kube-state-metrics",
    );
    assert_eq!(rendered.matches(&format!("image: {ksm}\n")).count(), 1);
}

#[test]
fn kubectl_kustomize_renders_every_cluster_with_every_object() {
    let files = render_example();
    for (cluster, rendered) in kustomize_all() {
        let ours = cluster_objects(&files, &cluster);
        let theirs = documents(&rendered);
        assert_eq!(kinds(&theirs), kinds(&ours), "{cluster}");
        assert_eq!(
            theirs.len(),
            if cluster == "cluster-02" { 23 } else { 14 },
            "{cluster}"
        );
        // kustomize passes our objects through unchanged.
        for o in &ours {
            let name = o["metadata"]["name"].as_str().unwrap();
            assert!(
                theirs.iter().any(|t| t == o),
                "{cluster}: {} {name} changed in kustomize's output",
                o["kind"]
            );
        }
    }
}

/// A venv with kubernetes-validate in cargo's per-target scratch directory,
/// or None (with the reason printed) when PyPI cannot be reached.
fn kubernetes_validate() -> Option<PathBuf> {
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("kubernetes-validate-venv");
    let bin = venv.join("bin/kubernetes-validate");
    if bin.exists() {
        return Some(bin);
    }
    let status = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .unwrap();
    assert!(status.success(), "python3 -m venv {} failed", venv.display());
    let out = Command::new(venv.join("bin/pip"))
        .args(["install", "--quiet", "kubernetes-validate"])
        .output()
        .unwrap();
    if out.status.success() {
        return Some(bin);
    }
    let reach = Command::new("python3")
        .args([
            "-c",
            "import urllib.request; urllib.request.urlopen('https://pypi.org/simple/kubernetes-validate/', timeout=15)",
        ])
        .status()
        .unwrap();
    if !reach.success() {
        eprintln!("SKIPPED: pip cannot reach PyPI to install kubernetes-validate");
        return None;
    }
    panic!(
        "pip install kubernetes-validate failed although PyPI answers: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn every_rendered_object_passes_strict_validation_for_kubernetes_1_32() {
    let Some(validator) = kubernetes_validate() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut rendered_sets = kustomize_all();
    // A spec without tenants, TLS or kubelet scrapes takes other branches.
    rendered_sets.extend(kustomize_files(
        &render_text("minimal.yaml", MINIMAL_SPEC).unwrap(),
    ));
    assert_eq!(rendered_sets.len(), 4);
    for (cluster, rendered) in rendered_sets {
        let path = dir.path().join(format!("{cluster}.yaml"));
        std::fs::write(&path, &rendered).unwrap();
        let out = Command::new(&validator)
            .args(["--strict", "-k", "1.32.0"])
            .arg(&path)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{cluster}: kubernetes-validate refused the manifests:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // One verdict line per object, all of them passes.
        let passed = stdout
            .lines()
            .filter(|l| l.starts_with("INFO") && l.contains("passed"))
            .count();
        assert_eq!(passed, documents(&rendered).len(), "{cluster}:\n{stdout}");
    }
}

const KSM_BODY: &str = r#"# HELP kube_pod_info Information about pod.
# TYPE kube_pod_info gauge
kube_pod_info{namespace="monitoring-tenant-a",pod="shop-0",node="edge-a1"} 1
kube_pod_info{namespace="monitoring-tenant-b",pod="billing-0",node="edge-b1"} 1
kube_pod_info{namespace="monitoring",pod="kube-state-metrics-7d9",node="edge-a1"} 1
kube_pod_info{namespace="monitoring-tenant-a-evil",pod="x-0",node="edge-b1"} 1
# TYPE kube_namespace_status_phase gauge
kube_namespace_status_phase{namespace="monitoring-tenant-a",phase="Active"} 1
kube_namespace_status_phase{namespace="monitoring-tenant-b",phase="Active"} 1
kube_namespace_status_phase{namespace="kube-system",phase="Active"} 1
# TYPE kube_deployment_status_replicas gauge
kube_deployment_status_replicas{namespace="monitoring-tenant-b",deployment="billing"} 2
# TYPE kube_node_labels gauge
kube_node_labels{node="edge-a1",label_tenant="tenant-a"} 1
kube_node_labels{node="edge-b1",label_tenant="tenant-b"} 1
# TYPE kube_node_info gauge
kube_node_info{node="edge-a1",kernel_version="6.1.0"} 1
# TYPE kube_persistentvolume_info gauge
kube_persistentvolume_info{persistentvolume="pv-wal",storageclass="longhorn"} 1
# TYPE kube_configmap_info gauge
kube_configmap_info{namespace="kube-system",configmap="coredns",label_tenant="tenant-a"} 1
"#;

/// Series of [`KSM_BODY`] the agent's KSM job keeps, as `name{label=value,...}`.
fn kept_ksm_series(agent: &AgentPlan) -> BTreeSet<String> {
    let plan = &agent.plan;
    let job = plan
        .scrape_jobs
        .iter()
        .find(|j| plan.str(j.name) == "kube-state-metrics")
        .expect("the cluster agent scrapes KSM");
    let mut program = RelabelProgram::build(plan, &job.metric_relabel, 8192).unwrap();
    let mut parser = Parser::new(&job.limits);
    parser.reset(ExpositionFormat::PrometheusText);
    let mut labels = LabelSet::with_capacity(16, 8192);
    let mut kept = BTreeSet::new();
    let mut seen = 0;
    let mut sink = |s: &outpost_core::expfmt::Sample<'_>| {
        seen += 1;
        labels.clear();
        labels.push("__name__", s.name).unwrap();
        for (n, v) in s.labels.iter() {
            labels.push(n, v).unwrap();
        }
        if program.apply(&mut labels) {
            let name = labels.get("__name__").unwrap().to_string();
            let rest: Vec<String> = labels
                .iter()
                .filter(|(n, _)| *n != "__name__")
                .map(|(n, v)| format!("{n}={v}"))
                .collect();
            kept.insert(format!("{name}{{{}}}", rest.join(",")));
        }
        Ok(())
    };
    parser.handle_chunk(KSM_BODY.as_bytes(), &mut sink).unwrap();
    parser.finish(&mut sink).unwrap();
    assert_eq!(seen, 13, "the body's samples all reach relabeling");
    kept
}

fn cluster_plan<'a>(plans: &'a [AgentPlan], cluster: &str, tenant: Option<&str>) -> &'a AgentPlan {
    plans
        .iter()
        .find(|p| p.cluster == cluster && p.tenant.as_deref() == tenant && p.role == Role::Cluster)
        .unwrap()
}

#[test]
fn each_tenants_cluster_agent_keeps_only_its_own_ksm_series() {
    let (_, plans) = example();
    let a = kept_ksm_series(cluster_plan(&plans, "cluster-02", Some("tenant-a")));
    let b = kept_ksm_series(cluster_plan(&plans, "cluster-02", Some("tenant-b")));
    assert_eq!(
        a,
        BTreeSet::from([
            "kube_pod_info{namespace=monitoring-tenant-a,pod=shop-0,node=edge-a1}".to_string(),
            "kube_namespace_status_phase{namespace=monitoring-tenant-a,phase=Active}".to_string(),
            "kube_node_labels{node=edge-a1,label_tenant=tenant-a}".to_string(),
        ])
    );
    assert_eq!(
        b,
        BTreeSet::from([
            "kube_pod_info{namespace=monitoring-tenant-b,pod=billing-0,node=edge-b1}".to_string(),
            "kube_namespace_status_phase{namespace=monitoring-tenant-b,phase=Active}".to_string(),
            "kube_deployment_status_replicas{namespace=monitoring-tenant-b,deployment=billing}".to_string(),
            "kube_node_labels{node=edge-b1,label_tenant=tenant-b}".to_string(),
        ])
    );
    assert!(
        a.is_disjoint(&b),
        "a series reached both tenants: {:?}",
        a.intersection(&b).collect::<Vec<_>>()
    );
    for series in a.iter().chain(&b) {
        assert!(
            !series.contains("namespace=monitoring,"),
            "shared namespace leaked: {series}"
        );
        assert!(
            !series.contains("kube-system"),
            "cluster namespace leaked: {series}"
        );
    }
    // A single-tenant cluster keeps everything KSM says.
    let whole = kept_ksm_series(cluster_plan(&plans, "cluster-03", None));
    assert_eq!(whole.len(), 13);
}

const MINIMAL_SPEC: &str = r#"
image: registry.example.net/outpost@sha256:5b3c1c4b1bda4b12b6cf2bf6e3a2dbb4f3a9fe0f6f6d1f3f9cf7a1a3f34c0d5e
receiver:
  url: http://receiver.example.net:19291/api/v1/receive
  auth:
    basic: {username: edge, password_file: /etc/outpost/auth/password}
node:
  collectors: [cpu, meminfo]
scrape_jobs:
  - name: app
    scope: cluster
    targets: ["app.default.svc:8080"]
clusters:
  - name: site-1
    role: edge
"#;

#[test]
fn a_minimal_spec_gets_the_cards_budget_its_password_secret_and_no_kubelet_rbac() {
    let files = render_text("minimal.yaml", MINIMAL_SPEC).unwrap();
    let paths: Vec<String> = files.iter().map(|f| f.path.display().to_string()).collect();
    assert_eq!(
        paths,
        [
            "site-1/kustomization.yaml",
            "site-1/namespaces.yaml",
            "site-1/kube-state-metrics.yaml",
            "site-1/outpost-monitoring.yaml",
        ]
    );
    let objects = cluster_objects(&files, "site-1");
    for (kind, name) in [("DaemonSet", "outpost-node"), ("StatefulSet", "outpost-cluster")] {
        let pod = &find(&objects, kind, Some("monitoring"), name)["spec"]["template"]["spec"];
        let container = &pod["containers"][0];
        assert_eq!(
            container["resources"],
            serde_json::json!({"requests": {"cpu": "200m", "memory": "256Mi"}, "limits": {"cpu": "200m", "memory": "256Mi"}}),
            "{kind}"
        );
        assert_eq!(pod["automountServiceAccountToken"], false, "{kind}");
        let secret_volumes: Vec<&Value> = pod["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|v| v.get("secret").is_some())
            .collect();
        assert_eq!(
            secret_volumes,
            [&serde_json::json!({"name": "outpost-auth", "secret": {
                "secretName": "outpost-auth", "defaultMode": 0o440,
                "items": [{"key": "password", "path": "password"}]}})],
            "{kind}"
        );
    }
    // The default WAL size of the cluster agent sizes its claim.
    let sts = find(&objects, "StatefulSet", Some("monitoring"), "outpost-cluster");
    assert_eq!(
        sts["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"],
        "1Gi"
    );
}
