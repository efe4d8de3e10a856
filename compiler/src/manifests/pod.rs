//! The agent's pod: its containers, volumes, probes and placement, and the WAL's volume claim,
//! derived from one plan.

use super::*;

/// The seed's Longhorn PVC, sized to the plan's WAL bound (50Gi in the seed).
pub(super) fn wal_claim(plan: &Plan) -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some("wal".into()),
            ..Default::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            storage_class_name: Some(WAL_STORAGE_CLASS.into()),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_string(),
                    Quantity(quantity_memory(plan.wal.max_bytes)),
                )])),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub(super) fn pod_template(
    unit: &Unit,
    agent: &AgentPlan,
    image: &PinnedImage,
    plan_bytes: &[u8],
    config_map_name: &str,
    plan_key: &str,
    secrets: &[SecretMount],
) -> PodTemplateSpec {
    let plan = &agent.plan;
    let role = agent.role;
    let plan_path = format!("{PLAN_DIR}/{plan_key}");
    let wal_dir = plan.str(plan.wal.dir).to_string();
    let mut args = vec!["run".to_string(), "--plan".into(), plan_path.clone()];
    let mut mounts = vec![
        VolumeMount {
            name: "plan".into(),
            mount_path: plan_path,
            // A subPath never follows ConfigMap updates; the checksum
            // annotation rolls the pods instead, so every pod runs the plan
            // its template was rendered with.
            sub_path: Some(plan_key.into()),
            read_only: Some(true),
            ..Default::default()
        },
        VolumeMount {
            name: "wal".into(),
            mount_path: wal_dir.clone(),
            ..Default::default()
        },
    ];
    let mut volumes = vec![Volume {
        name: "plan".into(),
        config_map: Some(ConfigMapVolumeSource {
            name: config_map_name.into(),
            items: Some(vec![KeyToPath {
                key: plan_key.into(),
                path: plan_key.into(),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }];
    let mut env = None;
    let mut init_containers = None;
    if role == Role::Node {
        for (name, host, inside, flag) in [
            ("host-proc", "/proc", "/host/proc", "--path.procfs"),
            ("host-sys", "/sys", "/host/sys", "--path.sysfs"),
            ("host-root", "/", "/host/root", "--path.rootfs"),
        ] {
            args.extend([flag.to_string(), inside.to_string()]);
            volumes.push(host_path_volume(name, host, "Directory"));
            mounts.push(VolumeMount {
                name: name.into(),
                mount_path: inside.into(),
                read_only: Some(true),
                // Filesystems mounted on the host after the pod started stay visible.
                mount_propagation: (name == "host-root").then(|| "HostToContainer".into()),
                ..Default::default()
            });
        }
        // The textfile collector's directory, from the host, read-only, at the same path. Created
        // if absent, so that the agent starts on nodes where nothing writes textfiles yet.
        if let Some(t) = plan.node.as_ref().and_then(|n| n.options.textfile.as_ref()) {
            let dir = plan.str(t.directory);
            volumes.push(host_path_volume("textfile", dir, "DirectoryOrCreate"));
            mounts.push(VolumeMount {
                name: "textfile".into(),
                mount_path: dir.into(),
                read_only: Some(true),
                ..Default::default()
            });
        }
        let host_wal = format!("{HOST_WAL_ROOT}/{}", unit.namespace);
        volumes.push(host_path_volume("wal", &host_wal, "DirectoryOrCreate"));
        env = Some(vec![
            field_env("NODE_NAME", "spec.nodeName"),
            field_env("NODE_IP", "status.hostIP"),
        ]);
        init_containers = Some(vec![wal_owner_container(image, &wal_dir)]);
        // The WAL on the node's disk is locked by one agent at a time. A
        // DaemonSet may start a node's new pod while the old one is still
        // terminating (its shutdown takes at most a few seconds); the new
        // agent waits for the lock instead of failing. The StatefulSet
        // starts a pod only once the old one is gone, so it needs no wait.
        args.extend(["--wal-lock-wait".into(), "30s".into()]);
    }
    args.extend(["--listen".into(), format!("0.0.0.0:{AGENT_PORT}")]);
    for s in secrets {
        volumes.push(Volume {
            name: s.secret.clone(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(s.secret.clone()),
                default_mode: Some(SECRET_FILE_MODE),
                items: Some(
                    s.files
                        .iter()
                        .map(|f| KeyToPath {
                            key: f.clone(),
                            path: f.clone(),
                            ..Default::default()
                        })
                        .collect(),
                ),
                ..Default::default()
            }),
            ..Default::default()
        });
        mounts.push(VolumeMount {
            name: s.secret.clone(),
            mount_path: s.dir.clone(),
            read_only: Some(true),
            ..Default::default()
        });
    }
    let container = Container {
        name: "outpost".into(),
        image: Some(image.to_string()),
        image_pull_policy: Some("IfNotPresent".into()),
        args: Some(args),
        env,
        ports: Some(vec![ContainerPort {
            name: Some("http".into()),
            container_port: AGENT_PORT,
            protocol: Some("TCP".into()),
            ..Default::default()
        }]),
        liveness_probe: Some(agent_probe("/-/healthy")),
        readiness_probe: Some(agent_probe("/-/ready")),
        resources: Some(budget_resources(plan)),
        security_context: Some(restricted_container_context()),
        volume_mounts: Some(mounts),
        ..Default::default()
    };
    let mut annotations = BTreeMap::new();
    annotations.insert(PLAN_CHECKSUM_ANNOTATION.to_string(), sha256_hex(plan_bytes));
    let node_role = role == Role::Node;
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(unit_labels(unit, Some(role))),
            annotations: Some(annotations),
            ..Default::default()
        }),
        spec: Some(PodSpec {
            service_account_name: Some(AGENT_SERVICE_ACCOUNT.into()),
            automount_service_account_token: Some(
                uses_service_account(plan) || discovery::discovers_in_cluster(plan),
            ),
            // The node collectors read /proc/net through the host's network
            // namespace, as node_exporter does; tenants' DaemonSets never
            // share a node, so their ports cannot clash.
            host_network: node_role.then_some(true),
            dns_policy: node_role.then(|| "ClusterFirstWithHostNet".into()),
            affinity: unit.tenant.map(tenant_affinity),
            node_selector: Some(labels_map(&[("kubernetes.io/os", "linux")])),
            // Node metrics are wanted from tainted nodes too (control plane, dedicated pools).
            tolerations: node_role.then(|| {
                vec![Toleration {
                    operator: Some("Exists".into()),
                    ..Default::default()
                }]
            }),
            security_context: Some(PodSecurityContext {
                run_as_non_root: Some(true),
                run_as_user: Some(AGENT_UID),
                run_as_group: Some(AGENT_UID),
                fs_group: Some(AGENT_UID),
                fs_group_change_policy: Some("OnRootMismatch".into()),
                seccomp_profile: Some(SeccompProfile {
                    type_: "RuntimeDefault".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            init_containers,
            containers: vec![container],
            volumes: Some(volumes),
            ..Default::default()
        }),
    }
}

/// A hostPath is created root-owned and fsGroup does not apply to it, so
/// the agent's own image hands the WAL directory to the agent's user first:
/// `outpost chown-wal`, as root with CHOWN only, the one thing the agent
/// itself may not do. The agent container keeps no capability at all.
pub(super) fn wal_owner_container(image: &PinnedImage, wal_dir: &str) -> Container {
    Container {
        name: "wal-owner".into(),
        image: Some(image.to_string()),
        image_pull_policy: Some("IfNotPresent".into()),
        args: Some(vec![
            "chown-wal".into(),
            "--wal-dir".into(),
            wal_dir.into(),
            "--owner".into(),
            format!("{AGENT_UID}:{AGENT_UID}"),
        ]),
        resources: Some(ResourceRequirements {
            requests: Some(BTreeMap::from([
                ("cpu".to_string(), Quantity("10m".into())),
                ("memory".to_string(), Quantity("16Mi".into())),
            ])),
            limits: Some(BTreeMap::from([
                ("cpu".to_string(), Quantity("50m".into())),
                ("memory".to_string(), Quantity("16Mi".into())),
            ])),
            ..Default::default()
        }),
        security_context: Some(SecurityContext {
            run_as_non_root: Some(false),
            run_as_user: Some(0),
            read_only_root_filesystem: Some(true),
            allow_privilege_escalation: Some(false),
            capabilities: Some(Capabilities {
                add: Some(vec!["CHOWN".into()]),
                drop: Some(vec!["ALL".into()]),
            }),
            ..Default::default()
        }),
        volume_mounts: Some(vec![VolumeMount {
            name: "wal".into(),
            mount_path: wal_dir.into(),
            ..Default::default()
        }]),
        ..Default::default()
    }
}

pub(super) fn host_path_volume(name: &str, path: &str, kind: &str) -> Volume {
    Volume {
        name: name.into(),
        host_path: Some(HostPathVolumeSource {
            path: path.into(),
            type_: Some(kind.into()),
        }),
        ..Default::default()
    }
}

pub(super) fn field_env(name: &str, field_path: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: field_path.into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub(super) fn agent_probe(path: &str) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::String("http".into()),
            ..Default::default()
        }),
        period_seconds: Some(10),
        timeout_seconds: Some(5),
        ..Default::default()
    }
}

/// Required node affinity: every key of the tenant's selector, with its value.
pub(super) fn tenant_affinity(tenant: &TenantSpec) -> Affinity {
    Affinity {
        node_affinity: Some(NodeAffinity {
            required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                node_selector_terms: vec![NodeSelectorTerm {
                    match_expressions: Some(
                        tenant
                            .node_selector
                            .iter()
                            .map(|(k, v)| NodeSelectorRequirement {
                                key: k.clone(),
                                operator: "In".into(),
                                values: Some(vec![v.clone()]),
                            })
                            .collect(),
                    ),
                    ..Default::default()
                }],
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Requests and limits from the plan's budget; zero means "not set".
pub(super) fn budget_resources(plan: &Plan) -> ResourceRequirements {
    let b = &plan.budget;
    let pair = |cpu: u32, memory: u64| {
        let mut m = BTreeMap::new();
        if cpu > 0 {
            m.insert("cpu".to_string(), Quantity(quantity_cpu(cpu)));
        }
        if memory > 0 {
            m.insert("memory".to_string(), Quantity(quantity_memory(memory)));
        }
        (!m.is_empty()).then_some(m)
    };
    ResourceRequirements {
        requests: pair(b.cpu_request_millis, b.memory_request_bytes),
        limits: pair(b.cpu_limit_millis, b.memory_limit_bytes),
        ..Default::default()
    }
}

/// Non-root, read-only root, no privilege escalation, no capabilities.
pub(crate) fn restricted_container_context() -> SecurityContext {
    SecurityContext {
        run_as_non_root: Some(true),
        read_only_root_filesystem: Some(true),
        allow_privilege_escalation: Some(false),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            ..Default::default()
        }),
        ..Default::default()
    }
}
