//! Collectors against the fixture trees in `src/testdata` (captured from a 2-CPU VM, then edited
//! to reach the corner cases: partitions, old-kernel diskstats, escaped mount points, ...).

use super::*;
use std::io;

fn fixture_paths(rootfs: &Path) -> Paths {
    let testdata = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/testdata");
    Paths {
        procfs: testdata.join("proc"),
        sysfs: testdata.join("sys"),
        rootfs: rootfs.to_path_buf(),
    }
}

/// Renders one collector and returns the text without the scrape-meta and build-info families.
fn render(collector: Collector, rootfs: &Path) -> (String, usize) {
    let mut node = NodeCollector::new(fixture_paths(rootfs), &[collector]);
    let mut out = String::new();
    let samples = node.collect(&mut out);
    let end = out
        .find("# HELP node_scrape_collector_duration_seconds")
        .expect("scrape meta present");
    assert!(
        out.contains(&format!(
            "node_scrape_collector_success{{collector=\"{}\"}} 1\n",
            collector.name()
        )),
        "{collector:?} failed: {:?}\n{out}",
        node.failures().map(|(_, e)| e.to_string()).collect::<Vec<_>>()
    );
    // Everything after the collector's own text: 2 meta samples, outpost_build_info and
    // node_exporter_build_info.
    (out[..end].to_string(), samples - 4)
}

/// An os-release as systemd's os-release(5) describes it, with each quoting style.
fn write_os_release(rootfs: &Path) {
    std::fs::create_dir_all(rootfs.join("etc")).unwrap();
    std::fs::write(
        rootfs.join("etc/os-release"),
        "PRETTY_NAME=\"Debian GNU/Linux 13 (trixie)\"\nNAME='Debian GNU/Linux'\nVERSION_ID=\"13.1\"\n\
         VERSION=\"13 (trixie)\"\nVERSION_CODENAME=trixie\nID=debian\n# a comment\nBUILD_ID=\"say \\\"hi\\\"\"\n",
    )
    .unwrap();
}

fn no_rootfs() -> PathBuf {
    PathBuf::from("/nonexistent-outpost-rootfs")
}

#[test]
fn cpu_seconds_and_guest_seconds_per_cpu_and_mode() {
    let (text, samples) = render(Collector::Cpu, &no_rootfs());
    let expected = "\
# HELP node_cpu_seconds_total Seconds the CPUs spent in each mode.
# TYPE node_cpu_seconds_total counter
node_cpu_seconds_total{cpu=\"0\",mode=\"user\"} 55.04
node_cpu_seconds_total{cpu=\"0\",mode=\"nice\"} 0
node_cpu_seconds_total{cpu=\"0\",mode=\"system\"} 33.21
node_cpu_seconds_total{cpu=\"0\",mode=\"idle\"} 5929.27
node_cpu_seconds_total{cpu=\"0\",mode=\"iowait\"} 0.63
node_cpu_seconds_total{cpu=\"0\",mode=\"irq\"} 0
node_cpu_seconds_total{cpu=\"0\",mode=\"softirq\"} 0.06
node_cpu_seconds_total{cpu=\"0\",mode=\"steal\"} 0.1
node_cpu_seconds_total{cpu=\"1\",mode=\"user\"} 61.14
node_cpu_seconds_total{cpu=\"1\",mode=\"nice\"} 0
node_cpu_seconds_total{cpu=\"1\",mode=\"system\"} 36.76
node_cpu_seconds_total{cpu=\"1\",mode=\"idle\"} 5918.77
node_cpu_seconds_total{cpu=\"1\",mode=\"iowait\"} 4.95
node_cpu_seconds_total{cpu=\"1\",mode=\"irq\"} 0
node_cpu_seconds_total{cpu=\"1\",mode=\"softirq\"} 0.39
node_cpu_seconds_total{cpu=\"1\",mode=\"steal\"} 0.18
# HELP node_cpu_guest_seconds_total Seconds the CPUs spent in guests (VMs) for each mode.
# TYPE node_cpu_guest_seconds_total counter
node_cpu_guest_seconds_total{cpu=\"0\",mode=\"user\"} 0
node_cpu_guest_seconds_total{cpu=\"0\",mode=\"nice\"} 0
node_cpu_guest_seconds_total{cpu=\"1\",mode=\"user\"} 0.12
node_cpu_guest_seconds_total{cpu=\"1\",mode=\"nice\"} 0.03
# HELP node_cpu_core_throttles_total Number of times this CPU core has been throttled.
# TYPE node_cpu_core_throttles_total counter
node_cpu_core_throttles_total{core=\"0\",package=\"0\"} 5
# HELP node_cpu_package_throttles_total Number of times this CPU package has been throttled.
# TYPE node_cpu_package_throttles_total counter
node_cpu_package_throttles_total{package=\"0\"} 7
# HELP node_cpu_isolated Whether each core is isolated, information from /sys/devices/system/cpu/isolated.
# TYPE node_cpu_isolated gauge
node_cpu_isolated{cpu=\"1\"} 1
node_cpu_isolated{cpu=\"3\"} 1
node_cpu_isolated{cpu=\"4\"} 1
";
    assert_eq!(text, expected);
    // Both fixture CPUs are threads of core 0 in package 0: one series each for core and package.
    assert_eq!(samples, 16 + 4 + 1 + 1 + 3);
}

#[test]
fn stat_counters_and_procs() {
    let (text, samples) = render(Collector::Stat, &no_rootfs());
    let expected = "\
# HELP node_boot_time_seconds Node boot time, in unixtime.
# TYPE node_boot_time_seconds gauge
node_boot_time_seconds 1795539039
# HELP node_context_switches_total Total number of context switches.
# TYPE node_context_switches_total counter
node_context_switches_total 498872
# HELP node_forks_total Total number of forks.
# TYPE node_forks_total counter
node_forks_total 10701
# HELP node_intr_total Total number of interrupts serviced.
# TYPE node_intr_total counter
node_intr_total 289766
# HELP node_procs_blocked Number of processes blocked waiting for I/O to complete.
# TYPE node_procs_blocked gauge
node_procs_blocked 2
# HELP node_procs_running Number of processes in runnable state.
# TYPE node_procs_running gauge
node_procs_running 1
";
    assert_eq!(text, expected);
    assert_eq!(samples, 6);
}

#[test]
fn meminfo_units_and_parenthesised_names() {
    let (text, samples) = render(Collector::Meminfo, &no_rootfs());
    let fixture = std::fs::read_to_string(fixture_paths(&no_rootfs()).procfs.join("meminfo")).unwrap();
    assert_eq!(samples, fixture.lines().count());
    for line in [
        "# HELP node_memory_MemTotal_bytes Memory information field MemTotal_bytes.\n\
         # TYPE node_memory_MemTotal_bytes gauge\n\
         node_memory_MemTotal_bytes 25276514304\n",
        "\nnode_memory_Active_anon_bytes 1605632\n",
        "# HELP node_memory_Active_anon_bytes Memory information field Active_anon_bytes.\n",
        "\nnode_memory_HugePages_Total 0\n",
        "\nnode_memory_VmallocTotal_bytes 35184372087808\n",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
}

#[test]
fn loadavg_three_gauges() {
    let (text, samples) = render(Collector::Loadavg, &no_rootfs());
    assert_eq!(
        text,
        "# HELP node_load1 1m load average.\n# TYPE node_load1 gauge\nnode_load1 0.25\n\
         # HELP node_load5 5m load average.\n# TYPE node_load5 gauge\nnode_load5 0.1\n\
         # HELP node_load15 15m load average.\n# TYPE node_load15 gauge\nnode_load15 0.05\n"
    );
    assert_eq!(samples, 3);
}

#[test]
fn vmstat_default_field_filter() {
    let (text, samples) = render(Collector::Vmstat, &no_rootfs());
    let names: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(
        names,
        [
            "node_vmstat_pgpgin 2470865",
            "node_vmstat_pgpgout 9111308",
            "node_vmstat_pswpin 0",
            "node_vmstat_pswpout 0",
            "node_vmstat_pgfault 7337702",
            "node_vmstat_pgmajfault 1541",
            "node_vmstat_oom_kill 3",
        ]
    );
    assert_eq!(samples, 7);
    assert!(text.contains(
        "# HELP node_vmstat_oom_kill /proc/vmstat information field oom_kill.\n# TYPE node_vmstat_oom_kill untyped\n"
    ));
}

#[test]
fn pressure_seconds_from_microseconds() {
    let (text, samples) = render(Collector::Pressure, &no_rootfs());
    let values: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(
        values,
        [
            "node_pressure_cpu_waiting_seconds_total 26.284003",
            "node_pressure_io_waiting_seconds_total 5.863175",
            "node_pressure_io_stalled_seconds_total 4.372274",
            "node_pressure_memory_waiting_seconds_total 1.5",
            "node_pressure_memory_stalled_seconds_total 0.00025",
        ]
    );
    assert_eq!(samples, 5);
}

#[test]
fn missing_pressure_files_fail_only_that_collector() {
    let empty = tempfile::tempdir().unwrap();
    let mut paths = fixture_paths(&no_rootfs());
    // A procfs with stat but without pressure/: a kernel without CONFIG_PSI.
    std::fs::copy(paths.procfs.join("stat"), empty.path().join("stat")).unwrap();
    paths.procfs = empty.path().to_path_buf();
    let mut node = NodeCollector::new(paths, &[Collector::Pressure, Collector::Stat]);
    let mut out = String::new();
    let samples = node.collect(&mut out);
    assert!(out.contains("node_scrape_collector_success{collector=\"pressure\"} 0\n"));
    assert!(out.contains("node_scrape_collector_success{collector=\"stat\"} 1\n"));
    assert!(!out.contains("node_pressure_"), "{out}");
    // 6 stat samples, 2 + 2 meta samples, the two build infos.
    assert_eq!(samples, 6 + 4 + 2);
    let failures: Vec<_> = node.failures().collect();
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].0, Collector::Pressure);
    assert!(
        failures[0].1.to_string().contains("pressure/cpu"),
        "{}",
        failures[0].1
    );
}

#[test]
fn diskstats_excludes_partitions_and_handles_short_lines() {
    let (text, samples) = render(Collector::Diskstats, &no_rootfs());
    assert!(
        !text.contains("loop0") && !text.contains("vda1") && !text.contains("nvme0n1p1"),
        "{text}"
    );
    for line in [
        "node_disk_info{device=\"vda\",major=\"254\",minor=\"0\",model=\"\",path=\"\",revision=\"\",serial=\"\",wwn=\"\"} 1\n",
        "node_disk_reads_completed_total{device=\"vda\"} 52900\n",
        "node_disk_read_bytes_total{device=\"vda\"} 2531640320\n",
        "node_disk_read_time_seconds_total{device=\"vda\"} 50.579\n",
        "node_disk_written_bytes_total{device=\"vda\"} 9330425856\n",
        "node_disk_io_now{device=\"nvme0n1\"} 1\n",
        "node_disk_io_time_weighted_seconds_total{device=\"nvme0n1\"} 0.008\n",
        "node_disk_discarded_sectors_total{device=\"vda\"} 283512\n",
        "node_disk_flush_requests_time_seconds_total{device=\"vda\"} 0.037\n",
        "node_disk_flush_requests_total{device=\"zram0\"} 0\n",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    // nvme0n1 has the 11 pre-4.18 columns: no discard or flush series for it.
    assert!(!text.contains("node_disk_discards_completed_total{device=\"nvme0n1\"}"));
    // 3 devices: info + 11 columns each, and 6 discard/flush columns for vda and zram0.
    assert_eq!(samples, 3 * 12 + 2 * 6);
}

#[test]
fn disk_info_reads_udev_properties_under_rootfs() {
    let rootfs = tempfile::tempdir().unwrap();
    let udev = rootfs.path().join("run/udev/data");
    std::fs::create_dir_all(&udev).unwrap();
    std::fs::write(
        udev.join("b254:0"),
        "S:disk/by-path/pci-0000:00:05.0\nE:ID_PATH=pci-0000:00:05.0\nE:ID_MODEL=Virtual \"Disk\"\n\
         E:ID_SERIAL_SHORT=abc123\nE:ID_REVISION=1.0\nE:ID_WWN=0x5000\nE:ID_MODEL_ENC=x\n\
         E:ID_ATA=1\nE:ID_ATA_ROTATION_RATE_RPM=7200\nE:ID_ATA_WRITE_CACHE=1\nE:ID_ATA_WRITE_CACHE_ENABLED=0\n\
         E:ID_FS_TYPE=ext4\nE:ID_FS_USAGE=filesystem\nE:ID_FS_UUID=1234-abcd\nE:ID_FS_VERSION=1.0\n",
    )
    .unwrap();
    std::fs::write(
        udev.join("b253:0"),
        "E:DM_NAME=vg-root\nE:DM_UUID=LVM-x\nE:DM_VG_NAME=vg\nE:DM_LV_NAME=root\n",
    )
    .unwrap();
    // Without ID_ATA the ATA attributes are not trusted, as in node_exporter.
    std::fs::write(udev.join("b259:0"), "E:ID_ATA_ROTATION_RATE_RPM=0\n").unwrap();
    let (text, samples) = render(Collector::Diskstats, rootfs.path());
    for expected in [
        "node_disk_info{device=\"vda\",major=\"254\",minor=\"0\",model=\"Virtual \\\"Disk\\\"\",\
         path=\"pci-0000:00:05.0\",revision=\"1.0\",serial=\"abc123\",wwn=\"0x5000\"} 1\n",
        "# HELP node_disk_filesystem_info Info about disk filesystem.\n\
         # TYPE node_disk_filesystem_info gauge\n\
         node_disk_filesystem_info{device=\"vda\",type=\"ext4\",usage=\"filesystem\",uuid=\"1234-abcd\",\
         version=\"1.0\"} 1\n# HELP",
        "# TYPE node_disk_device_mapper_info gauge\n\
         node_disk_device_mapper_info{device=\"zram0\",lv_layer=\"\",lv_name=\"root\",name=\"vg-root\",\
         uuid=\"LVM-x\",vg_name=\"vg\"} 1\n# HELP",
        "# TYPE node_disk_ata_rotation_rate_rpm gauge\nnode_disk_ata_rotation_rate_rpm{device=\"vda\"} 7200\n# HELP",
        "\nnode_disk_ata_write_cache{device=\"vda\"} 1\n",
        "\nnode_disk_ata_write_cache_enabled{device=\"vda\"} 0\n",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in\n{text}");
    }
    assert!(!text.contains("node_disk_ata_rotation_rate_rpm{device=\"nvme0n1\"}"));
    // The 48 samples of the udev-less run, plus filesystem, device mapper and 3 ATA series.
    assert_eq!(samples, 48 + 1 + 1 + 3);
}

#[test]
fn disk_exclusion_matches_node_exporter_default() {
    for excluded in [
        "ram0",
        "loop12",
        "fd0",
        "sda1",
        "hdb2",
        "vda15",
        "xvda1",
        "nvme0n1p1",
        "nvme10n2p33",
    ] {
        assert!(diskstats::disk_excluded(excluded), "{excluded}");
    }
    for kept in [
        "sda", "vda", "xvdf", "nvme0n1", "zram0", "dm-0", "md0", "mmcblk0", "sr0", "ram", "loopx1",
    ] {
        assert!(!diskstats::disk_excluded(kept), "{kept}");
    }
}

#[test]
fn netdev_all_columns_without_lo() {
    let (text, samples) = render(Collector::Netdev, &no_rootfs());
    assert!(!text.contains("\"lo\""));
    let values: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(
        values,
        [
            "node_network_receive_bytes_total{device=\"eth0\"} 123735642",
            "node_network_receive_packets_total{device=\"eth0\"} 4204",
            "node_network_receive_errs_total{device=\"eth0\"} 1",
            "node_network_receive_drop_total{device=\"eth0\"} 2",
            "node_network_receive_fifo_total{device=\"eth0\"} 3",
            "node_network_receive_frame_total{device=\"eth0\"} 4",
            "node_network_receive_compressed_total{device=\"eth0\"} 5",
            "node_network_receive_multicast_total{device=\"eth0\"} 6",
            "node_network_transmit_bytes_total{device=\"eth0\"} 266793",
            "node_network_transmit_packets_total{device=\"eth0\"} 2600",
            "node_network_transmit_errs_total{device=\"eth0\"} 7",
            "node_network_transmit_drop_total{device=\"eth0\"} 8",
            "node_network_transmit_fifo_total{device=\"eth0\"} 9",
            "node_network_transmit_colls_total{device=\"eth0\"} 10",
            "node_network_transmit_carrier_total{device=\"eth0\"} 11",
            "node_network_transmit_compressed_total{device=\"eth0\"} 12",
            "node_network_receive_nohandler_total{device=\"eth0\"} 0",
        ]
    );
    assert_eq!(samples, 17);
    assert!(text.starts_with(
        "# HELP node_network_receive_bytes_total Network device statistic receive_bytes.\n\
         # TYPE node_network_receive_bytes_total counter\n"
    ));
}

#[test]
fn filesystem_filters_dedups_unescapes_and_reports_errors() {
    let rootfs = tempfile::tempdir().unwrap();
    std::fs::create_dir(rootfs.path().join("data dir")).unwrap();
    let (text, samples) = render(Collector::Filesystem, rootfs.path());
    let labels_root = "{device=\"/dev/vda\",fstype=\"ext4\",mountpoint=\"/\"}";
    let labels_data = "{device=\"/dev/vdb\",fstype=\"ext4\",mountpoint=\"/data dir\"}";
    let labels_missing = "{device=\"/dev/vdc\",fstype=\"xfs\",mountpoint=\"/missing\"}";
    assert!(
        text.contains(&format!("node_filesystem_readonly{labels_root} 0\n")),
        "{text}"
    );
    assert!(
        text.contains(&format!("node_filesystem_readonly{labels_data} 1\n")),
        "{text}"
    );
    assert!(text.contains(&format!("node_filesystem_device_error{labels_root} 0\n")));
    assert!(text.contains(&format!("node_filesystem_device_error{labels_missing} 1\n")));
    // A mount whose statvfs failed has only device_error, as in node_exporter.
    assert_eq!(text.matches(labels_missing).count(), 1);
    assert_eq!(
        text.matches(labels_root).count(),
        7,
        "root listed twice in mounts, rendered once"
    );
    for excluded in ["/proc", "/sys", "/dev/shm", "overlay", "/var/lib/docker"] {
        assert!(!text.contains(excluded), "{excluded} should be excluded:\n{text}");
    }
    // Two statvfs-able mounts times 7 families, plus the failed mount's device_error.
    assert_eq!(samples, 2 * 7 + 1);
    // The sizes are those of the directory's filesystem.
    let size_line = text
        .lines()
        .find(|l| l.starts_with("node_filesystem_size_bytes{"))
        .unwrap();
    let size: u64 = size_line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(size > 0);
}

#[test]
fn mount_point_and_fs_type_exclusions() {
    for excluded in [
        "/dev",
        "/dev/shm",
        "/proc",
        "/run/user/0",
        "/sys/fs/cgroup",
        "/mnt",
        "/media/usb",
    ] {
        assert!(filesystem::mount_point_excluded(excluded), "{excluded}");
    }
    assert!(filesystem::mount_point_excluded(
        "/var/lib/docker/overlay2/x/merged"
    ));
    assert!(filesystem::mount_point_excluded(
        "/var/lib/containers/storage/overlay"
    ));
    for kept in [
        "/",
        "/devices",
        "/home",
        "/var/lib/docker",
        "/var/lib/kubelet",
        "/runner",
    ] {
        assert!(!filesystem::mount_point_excluded(kept), "{kept}");
    }
    for excluded in ["cgroup2", "overlay", "tracefs", "squashfs", "nsfs"] {
        assert!(filesystem::fs_type_excluded(excluded));
    }
    for kept in ["ext4", "xfs", "tmpfs", "btrfs", "vfat", "nfs4"] {
        assert!(!filesystem::fs_type_excluded(kept));
    }
}

#[test]
fn time_and_clocksources() {
    let (text, samples) = render(Collector::Time, &no_rootfs());
    assert!(text.starts_with(
        "# HELP node_time_seconds System time in seconds since epoch (1970).\n# TYPE node_time_seconds gauge\n"
    ));
    assert!(text
        .contains("# TYPE node_time_zone_offset_seconds gauge\nnode_time_zone_offset_seconds{time_zone=\""));
    assert!(text.contains(
        "node_time_clocksource_available_info{clocksource=\"kvm-clock\",device=\"0\"} 1\n\
         node_time_clocksource_available_info{clocksource=\"tsc\",device=\"0\"} 1\n"
    ));
    assert!(text.contains("node_time_clocksource_current_info{clocksource=\"tsc\",device=\"0\"} 1\n"));
    assert_eq!(samples, 5);
}

#[test]
fn uname_labels_match_the_kernel() {
    let (text, samples) = render(Collector::Uname, &no_rootfs());
    assert_eq!(samples, 1);
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    assert!(
        text.contains(&format!("release=\"{}\"", release.trim())),
        "{text}"
    );
    assert!(text.contains("sysname=\"Linux\""));
}

#[test]
fn every_collector_at_once_and_buffer_reuse() {
    let rootfs = tempfile::tempdir().unwrap();
    std::fs::create_dir(rootfs.path().join("data dir")).unwrap();
    write_os_release(rootfs.path());
    let mut node = NodeCollector::new(fixture_paths(rootfs.path()), &Collector::ALL);
    let mut out = String::new();
    let first = node.collect(&mut out);
    assert_eq!(node.failures().count(), 0);
    let capacity = out.capacity();
    let second = node.collect(&mut out);
    assert_eq!(first, second);
    assert_eq!(
        out.capacity(),
        capacity,
        "second scrape must fit the first one's buffer"
    );
    assert_eq!(
        out.matches("node_scrape_collector_success{").count(),
        Collector::ALL.len()
    );
    assert!(out.contains("outpost_build_info{arch=\""));
    // Each family's samples follow its own header, and no family is announced twice.
    let mut seen = std::collections::BTreeSet::new();
    let mut current = "";
    for line in out.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            current = rest.split(' ').next().unwrap();
            assert!(seen.insert(current.to_string()), "{current} announced twice");
        } else if !line.starts_with('#') {
            let name = line.split(['{', ' ']).next().unwrap();
            assert_eq!(name, current, "sample outside its family: {line}");
        }
    }
}

#[test]
fn process_metrics_from_self_stat() {
    let paths = fixture_paths(&no_rootfs());
    let mut out = String::from("# existing\n");
    render_process_metrics(&paths.procfs, &mut out);
    let page = rustix::param::page_size() as u64;
    assert!(out.starts_with("# existing\n"));
    assert!(out.contains("process_cpu_seconds_total 3\n"), "{out}");
    assert!(out.contains(&format!("process_resident_memory_bytes {}\n", 2560 * page)));
    assert!(out.contains("process_virtual_memory_bytes 104857600\n"));
    assert!(
        out.contains("process_start_time_seconds 1795539162.45\n"),
        "{out}"
    );
    assert!(out.contains("# TYPE process_max_fds gauge\nprocess_max_fds "));
    // The fixture has no self/fd directory: the family is left out rather than reported as 0.
    assert!(!out.contains("process_open_fds"));
}

#[test]
fn process_metrics_of_this_process() {
    let mut out = String::new();
    render_process_metrics(Path::new("/proc"), &mut out);
    let open: u64 = out
        .lines()
        .find_map(|l| l.strip_prefix("process_open_fds "))
        .expect("open fds on a real procfs")
        .parse()
        .unwrap();
    // stdin/stdout/stderr at least.
    assert!(open >= 3, "{out}");
    assert_eq!(out.matches("# TYPE ").count(), 7);
}

#[test]
fn open_fds_are_counted_over_several_directory_reads() {
    let open_fds = || {
        let mut out = String::new();
        render_process_metrics(Path::new("/proc"), &mut out);
        out.lines()
            .find_map(|l| l.strip_prefix("process_open_fds "))
            .expect("open fds on a real procfs")
            .parse::<i64>()
            .unwrap()
    };
    let before = open_fds();
    // 300 names fill more than one 4 KiB getdents64 buffer.
    let held: Vec<_> = (0..300)
        .map(|_| std::fs::File::open("/proc/self/stat").unwrap())
        .collect();
    let grown = open_fds() - before;
    drop(held);
    // Other tests of this binary open and close files on their own threads meanwhile.
    assert!(
        (290..=310).contains(&grown),
        "{grown} more open fds after opening 300"
    );
}

#[test]
fn empty_meminfo_fails_even_after_other_collectors_wrote_samples() {
    let procfs = tempfile::tempdir().unwrap();
    let fixture = fixture_paths(&no_rootfs());
    std::fs::copy(fixture.procfs.join("stat"), procfs.path().join("stat")).unwrap();
    std::fs::write(procfs.path().join("meminfo"), "").unwrap();
    let paths = Paths {
        procfs: procfs.path().to_path_buf(),
        ..fixture
    };
    let mut node = NodeCollector::new(paths, &[Collector::Meminfo, Collector::Cpu]);
    let mut out = String::new();
    node.collect(&mut out);
    assert!(
        out.contains("node_scrape_collector_success{collector=\"cpu\"} 1\n"),
        "{out}"
    );
    assert!(
        out.contains("node_scrape_collector_success{collector=\"meminfo\"} 0\n"),
        "{out}"
    );
    assert!(!out.contains("node_memory_"));
}

#[test]
fn cpu_counters_never_go_back_unless_the_cpu_was_replugged() {
    let procfs = tempfile::tempdir().unwrap();
    let stat = procfs.path().join("stat");
    let write_stat = |user: u64, idle: u64, iowait: u64| {
        let line = format!("cpu0 {user} 0 0 {idle} {iowait} 0 0 0 0 0\n");
        std::fs::write(&stat, format!("cpu  1 1 1 1 1 1 1 1 1 1\n{line}")).unwrap();
    };
    let paths = Paths {
        procfs: procfs.path().to_path_buf(),
        ..fixture_paths(&no_rootfs())
    };
    let mut node = NodeCollector::new(paths, &[Collector::Cpu]);
    let mut out = String::new();
    let mut scrape = |out: &mut String| {
        node.collect(out);
        let value = |mode: &str| -> f64 {
            let prefix = format!("node_cpu_seconds_total{{cpu=\"0\",mode=\"{mode}\"}} ");
            out.lines()
                .find_map(|l| l.strip_prefix(prefix.as_str()))
                .unwrap()
                .parse()
                .unwrap()
        };
        (value("user"), value("idle"), value("iowait"))
    };
    write_stat(100, 100_000, 50);
    assert_eq!(scrape(&mut out), (1.0, 1000.0, 0.5));
    // iowait falls (the kernel does that): the higher value stays.
    write_stat(110, 100_100, 40);
    assert_eq!(scrape(&mut out), (1.1, 1001.0, 0.5));
    // idle falls by 2 s, less than the 3 s hot-plug threshold: kept.
    write_stat(120, 99_900, 60);
    assert_eq!(scrape(&mut out), (1.2, 1001.0, 0.6));
    // idle falls by 5 s: a re-plugged CPU, whose counters start over.
    write_stat(5, 99_600, 1);
    assert_eq!(scrape(&mut out), (0.05, 996.0, 0.01));
}

/// Filesystem stats that hang for chosen paths until the test lets them go; other paths get
/// the real statvfs.
struct HangingStats {
    hang_when: fn(&Path) -> bool,
    released: std::sync::Mutex<bool>,
    release: std::sync::Condvar,
    /// Calls made for hanging paths, and how many of them returned.
    asked: std::sync::atomic::AtomicUsize,
    returned: std::sync::atomic::AtomicUsize,
}

impl HangingStats {
    fn new(hang_when: fn(&Path) -> bool) -> Arc<HangingStats> {
        Arc::new(HangingStats {
            hang_when,
            released: std::sync::Mutex::new(false),
            release: std::sync::Condvar::new(),
            asked: 0.into(),
            returned: 0.into(),
        })
    }

    fn let_go(&self) {
        *self.released.lock().unwrap() = true;
        self.release.notify_all();
    }

    fn asked(&self) -> usize {
        self.asked.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl FsStatsSource for HangingStats {
    fn stats(&self, path: &Path) -> io::Result<FsStats> {
        use std::sync::atomic::Ordering::SeqCst;
        if (self.hang_when)(path) {
            self.asked.fetch_add(1, SeqCst);
            let mut released = self.released.lock().unwrap();
            while !*released {
                released = self.release.wait(released).unwrap();
            }
            self.returned.fetch_add(1, SeqCst);
        }
        Statvfs.stats(path)
    }
}

fn device_error(out: &str, mount_point: &str) -> Option<u64> {
    out.lines()
        .filter(|l| l.starts_with("node_filesystem_device_error{"))
        .find(|l| l.contains(&format!("mountpoint=\"{mount_point}\"")))
        .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
}

#[test]
fn a_hung_mount_is_reported_and_skipped_until_it_answers() {
    let rootfs = tempfile::tempdir().unwrap();
    std::fs::create_dir(rootfs.path().join("data dir")).unwrap();
    let source = HangingStats::new(|path| path.ends_with("data dir"));
    let mut node = NodeCollector::with_fs_stats(
        fixture_paths(rootfs.path()),
        &[Collector::Filesystem, Collector::Loadavg],
        source.clone(),
        // The answering root mount must answer in time on a starved machine; only the hung
        // mount is waited for this long, once.
        Duration::from_secs(2),
    );
    let mut out = String::new();
    for scrape in 0..3 {
        node.collect(&mut out);
        assert_eq!(
            device_error(&out, "/data dir"),
            Some(1),
            "scrape {scrape}:\n{out}"
        );
        assert!(
            !out.contains("node_filesystem_size_bytes{device=\"/dev/vdb\""),
            "{out}"
        );
        // The rest of the scrape goes on: the root filesystem and the other collector.
        assert_eq!(device_error(&out, "/"), Some(0), "{out}");
        assert!(
            out.contains("node_filesystem_size_bytes{device=\"/dev/vda\",fstype=\"ext4\",mountpoint=\"/\"} ")
        );
        assert!(out.contains("\nnode_load1 0.25\n"));
        assert!(out.contains("node_scrape_collector_success{collector=\"filesystem\"} 1\n"));
        // Asked once: later scrapes skip the mount while its call hangs.
        assert_eq!(source.asked(), 1, "scrape {scrape}");
        assert_eq!(node.state.filesystem.hanging(), 1);
    }
    source.let_go();
    // The worker answers on its own thread; poll until it has (a bounded readiness wait).
    let mut recovered = false;
    for _ in 0..500 {
        std::thread::sleep(Duration::from_millis(10));
        node.collect(&mut out);
        if device_error(&out, "/data dir") == Some(0) {
            recovered = true;
            break;
        }
    }
    assert!(recovered, "the mount never came back:\n{out}");
    assert_eq!(source.asked(), 2, "asked again once the first call returned");
    assert!(out.contains(
        "node_filesystem_readonly{device=\"/dev/vdb\",fstype=\"ext4\",mountpoint=\"/data dir\"} 1\n"
    ));
}

#[test]
fn at_most_max_workers_hung_mounts_are_waited_for() {
    let procfs = tempfile::tempdir().unwrap();
    let rootfs = tempfile::tempdir().unwrap();
    let mounts: String = (0..6)
        .map(|i| {
            std::fs::create_dir(rootfs.path().join(format!("nfs{i}"))).unwrap();
            format!("server:/export{i} /nfs{i} nfs4 rw 0 0\n")
        })
        .collect();
    std::fs::create_dir(procfs.path().join("1")).unwrap();
    std::fs::write(procfs.path().join("1/mounts"), mounts).unwrap();
    let paths = Paths {
        procfs: procfs.path().to_path_buf(),
        ..fixture_paths(rootfs.path())
    };
    let source = HangingStats::new(|_| true);
    let mut node = NodeCollector::with_fs_stats(
        paths,
        &[Collector::Filesystem],
        source.clone(),
        Duration::from_millis(20),
    );
    let mut out = String::new();
    let samples = node.collect(&mut out);
    // Every mount is reported failed; only MAX_STATFS_WORKERS calls were made.
    for i in 0..6 {
        assert_eq!(device_error(&out, &format!("/nfs{i}")), Some(1), "{out}");
    }
    // 6 device_error samples, 2 scrape-meta samples and the two build infos.
    assert_eq!(samples, 6 + 2 + 2);
    // Each worker makes its call on its own thread, maybe after the scrape gave up on it on a
    // starved machine; wait (bounded) for the calls to be made.
    for _ in 0..500 {
        if source.asked() >= MAX_STATFS_WORKERS {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(source.asked(), MAX_STATFS_WORKERS);
    node.collect(&mut out);
    assert_eq!(
        source.asked(),
        MAX_STATFS_WORKERS,
        "hung mounts are not asked again"
    );
    source.let_go();
    let mut recovered = false;
    for _ in 0..500 {
        std::thread::sleep(Duration::from_millis(10));
        node.collect(&mut out);
        if (0..6).all(|i| device_error(&out, &format!("/nfs{i}")) == Some(0)) {
            recovered = true;
            break;
        }
    }
    assert!(recovered, "not every mount came back:\n{out}");
}

/// The sample lines of one collector's render, without HELP and TYPE.
fn samples_of(collector: Collector, rootfs: &Path) -> Vec<String> {
    let (text, samples) = render(collector, rootfs);
    let lines: Vec<String> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(String::from)
        .collect();
    assert_eq!(lines.len(), samples);
    lines
}

#[test]
fn filefd_entropy_and_conntrack() {
    assert_eq!(
        samples_of(Collector::Filefd, &no_rootfs()),
        [
            "node_filefd_allocated 1184",
            "node_filefd_maximum 9223372036854776000"
        ]
    );
    assert_eq!(
        samples_of(Collector::Entropy, &no_rootfs()),
        [
            "node_entropy_available_bits 256",
            "node_entropy_pool_size_bits 256"
        ]
    );
    // Per-CPU hexadecimal statistics are summed over the two CPUs of the fixture.
    assert_eq!(
        samples_of(Collector::Conntrack, &no_rootfs()),
        [
            "node_nf_conntrack_entries 37",
            "node_nf_conntrack_entries_limit 262144",
            "node_nf_conntrack_stat_found 5",
            "node_nf_conntrack_stat_invalid 15",
            "node_nf_conntrack_stat_ignore 0",
            "node_nf_conntrack_stat_insert 0",
            "node_nf_conntrack_stat_insert_failed 1",
            "node_nf_conntrack_stat_drop 3",
            "node_nf_conntrack_stat_early_drop 3",
            "node_nf_conntrack_stat_search_restart 20",
        ]
    );
}

#[test]
fn netstat_default_fields_from_three_files() {
    let (text, _) = render(Collector::Netstat, &no_rootfs());
    let lines = samples_of(Collector::Netstat, &no_rootfs());
    assert_eq!(lines.len(), 34, "{lines:#?}");
    for line in [
        "node_netstat_TcpExt_ListenOverflows 2",
        "node_netstat_TcpExt_SyncookiesSent 0",
        "node_netstat_TcpExt_TCPSynRetrans 3",
        "node_netstat_IpExt_InOctets 496930745",
        "node_netstat_Ip_Forwarding 1",
        "node_netstat_Icmp_InErrors 1",
        "node_netstat_Tcp_CurrEstab 2",
        "node_netstat_Tcp_InErrs 0",
        "node_netstat_Udp_NoPorts 3",
        "node_netstat_Ip6_OutOctets 880",
        "node_netstat_Icmp6_InErrors 1",
        "node_netstat_Udp6_OutDatagrams 6",
    ] {
        assert!(lines.iter().any(|l| l == line), "missing {line} in {lines:#?}");
    }
    for excluded in [
        "TCPHPHits",
        "InNoRoutes",
        "DefaultTTL",
        "InHdrErrors",
        "MaxConn",
        "Ip6_InReceives",
    ] {
        assert!(!text.contains(excluded), "{excluded}");
    }
    assert!(text.contains(
        "# HELP node_netstat_Tcp_InSegs Statistic TcpInSegs.\n# TYPE node_netstat_Tcp_InSegs untyped\n"
    ));
}

#[test]
fn sockstat_softnet_udp_queues_and_arp() {
    let page = rustix::param::page_size();
    assert_eq!(
        samples_of(Collector::Sockstat, &no_rootfs()),
        [
            "node_sockstat_sockets_used 23".to_string(),
            "node_sockstat_TCP_inuse 6".into(),
            "node_sockstat_TCP_orphan 0".into(),
            "node_sockstat_TCP_tw 86".into(),
            "node_sockstat_TCP_alloc 7".into(),
            "node_sockstat_TCP_mem 3".into(),
            format!("node_sockstat_TCP_mem_bytes {}", 3 * page),
            "node_sockstat_UDP_inuse 1".into(),
            "node_sockstat_UDP_mem 2".into(),
            format!("node_sockstat_UDP_mem_bytes {}", 2 * page),
            "node_sockstat_FRAG_inuse 0".into(),
            "node_sockstat_FRAG_memory 0".into(),
            "node_sockstat_TCP6_inuse 2".into(),
            "node_sockstat_UDP6_inuse 1".into(),
        ]
    );
    assert_eq!(
        samples_of(Collector::Softnet, &no_rootfs()),
        [
            "node_softnet_processed_total{cpu=\"0\"} 7356",
            "node_softnet_processed_total{cpu=\"1\"} 17025",
            "node_softnet_dropped_total{cpu=\"0\"} 0",
            "node_softnet_dropped_total{cpu=\"1\"} 1",
            "node_softnet_times_squeezed_total{cpu=\"0\"} 2",
            "node_softnet_times_squeezed_total{cpu=\"1\"} 0",
        ]
    );
    assert_eq!(
        samples_of(Collector::UdpQueues, &no_rootfs()),
        [
            "node_udp_queues{ip=\"v4\",queue=\"tx\"} 256",
            "node_udp_queues{ip=\"v4\",queue=\"rx\"} 832",
            "node_udp_queues{ip=\"v6\",queue=\"tx\"} 0",
            "node_udp_queues{ip=\"v6\",queue=\"rx\"} 0",
        ]
    );
    assert_eq!(
        samples_of(Collector::Arp, &no_rootfs()),
        [
            "node_arp_entries{device=\"eth0\"} 2",
            "node_arp_entries{device=\"wlan0\"} 1"
        ]
    );
}

#[test]
fn os_release_quoting_and_version() {
    let rootfs = tempfile::tempdir().unwrap();
    write_os_release(rootfs.path());
    assert_eq!(
        samples_of(Collector::Os, rootfs.path()),
        [
            "node_os_info{build_id=\"say \\\"hi\\\"\",id=\"debian\",id_like=\"\",image_id=\"\",\
             image_version=\"\",name=\"Debian GNU/Linux\",pretty_name=\"Debian GNU/Linux 13 (trixie)\",\
             variant=\"\",variant_id=\"\",version=\"13 (trixie)\",version_codename=\"trixie\",\
             version_id=\"13.1\"} 1",
            "node_os_version{id=\"debian\",id_like=\"\",name=\"Debian GNU/Linux\"} 13.1",
        ]
    );
}

#[test]
fn netclass_attributes_of_each_interface() {
    let lines = samples_of(Collector::Netclass, &no_rootfs());
    assert_eq!(
        lines,
        [
            // bond0 has none of the attributes (a fixture for the bonding collector): it is
            // down, with empty info labels, and in no numeric family, as in node_exporter.
            "node_network_up{device=\"bond0\"} 0",
            "node_network_up{device=\"eth0\"} 1",
            "node_network_info{address=\"\",broadcast=\"\",device=\"bond0\",duplex=\"\",ifalias=\"\",\
             operstate=\"\"} 1",
            "node_network_info{address=\"02:fc:00:00:00:01\",broadcast=\"ff:ff:ff:ff:ff:ff\",\
             device=\"eth0\",duplex=\"full\",ifalias=\"\",operstate=\"up\"} 1",
            "node_network_address_assign_type{device=\"eth0\"} 0",
            "node_network_carrier{device=\"eth0\"} 1",
            "node_network_carrier_changes_total{device=\"eth0\"} 2",
            "node_network_carrier_up_changes_total{device=\"eth0\"} 1",
            "node_network_carrier_down_changes_total{device=\"eth0\"} 1",
            "node_network_device_id{device=\"eth0\"} 0",
            "node_network_dormant{device=\"eth0\"} 0",
            "node_network_flags{device=\"eth0\"} 4099",
            "node_network_iface_id{device=\"eth0\"} 2",
            "node_network_iface_link{device=\"eth0\"} 2",
            "node_network_iface_link_mode{device=\"eth0\"} 0",
            "node_network_mtu_bytes{device=\"eth0\"} 1500",
            "node_network_name_assign_type{device=\"eth0\"} 1",
            "node_network_net_dev_group{device=\"eth0\"} 0",
            "node_network_speed_bytes{device=\"eth0\"} 125000000",
            "node_network_transmit_queue_length{device=\"eth0\"} 1000",
            "node_network_protocol_type{device=\"eth0\"} 1",
        ]
    );
}

#[test]
fn timex_and_selinux_on_this_machine() {
    let lines = samples_of(Collector::Timex, &no_rootfs());
    assert_eq!(lines.len(), 17);
    let (state, timex) = crate::clock::adjtimex().unwrap();
    let synced = if state == 5 { 0 } else { 1 };
    assert_eq!(lines[0], format!("node_timex_sync_status {synced}"));
    assert!(lines.contains(&format!("node_timex_status {}", timex.status)));
    // The fixture sysfs has no selinuxfs: disabled.
    assert_eq!(
        samples_of(Collector::Selinux, &no_rootfs()),
        ["node_selinux_enabled 0"]
    );
}

fn node_limits() -> outpost_core::plan::Limits {
    outpost_core::plan::Limits {
        body_bytes: 1 << 20,
        samples: 10_000,
        label_count: 30,
        label_name_bytes: 128,
        label_value_bytes: 1024,
    }
}

#[test]
fn textfile_reads_good_files_and_reports_bad_ones() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
    write(
        "backup.prom",
        "# HELP backup_last_success_seconds Last good backup, \\\\ unixtime.\n\
         # TYPE backup_last_success_seconds gauge\n\
         backup_last_success_seconds{target=\"db\"} 1.7e9\n\
         # TYPE backup_duration_seconds histogram\n\
         backup_duration_seconds_bucket{le=\"60\"} 3\n\
         backup_duration_seconds_bucket{le=\"+Inf\"} 4\n\
         backup_duration_seconds_sum 200\n\
         backup_duration_seconds_count 4\n",
    );
    write("untyped.prom", "raid_ok 1\n");
    write("broken.prom", "this is { not exposition\n");
    write("stamped.prom", "stamped_metric 1 1700000000000\n");
    write("ignored.txt", "not_read 1\n");
    let mut node = NodeCollector::new(fixture_paths(&no_rootfs()), &[Collector::Textfile]);
    node.state.textfile = textfile::State::new(dir.path(), 10, 4096, &node_limits());
    let mut out = String::new();
    node.collect(&mut out);
    let path = |name: &str| dir.path().join(name).display().to_string();
    let mtime = |name: &str| {
        std::fs::metadata(dir.path().join(name))
            .unwrap()
            .modified()
            .unwrap()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    };
    let expected = format!(
        "# HELP backup_last_success_seconds Last good backup, \\\\ unixtime.\n\
         # TYPE backup_last_success_seconds gauge\n\
         backup_last_success_seconds{{target=\"db\"}} 1700000000\n\
         # HELP backup_duration_seconds Metric read from {backup}\n\
         # TYPE backup_duration_seconds histogram\n\
         backup_duration_seconds_bucket{{le=\"60\"}} 3\n\
         backup_duration_seconds_bucket{{le=\"+Inf\"}} 4\n\
         backup_duration_seconds_sum 200\n\
         backup_duration_seconds_count 4\n\
         # HELP raid_ok Metric read from {untyped}\n\
         # TYPE raid_ok untyped\n\
         raid_ok 1\n\
         # HELP node_textfile_mtime_seconds Unixtime mtime of textfiles successfully read.\n\
         # TYPE node_textfile_mtime_seconds gauge\n\
         node_textfile_mtime_seconds{{file=\"{backup}\"}} {backup_mtime}\n\
         node_textfile_mtime_seconds{{file=\"{untyped}\"}} {untyped_mtime}\n\
         # HELP node_textfile_scrape_error 1 if there was an error opening or reading a file, 0 otherwise\n\
         # TYPE node_textfile_scrape_error gauge\n\
         node_textfile_scrape_error 1\n",
        backup = path("backup.prom"),
        untyped = path("untyped.prom"),
        backup_mtime = mtime("backup.prom"),
        untyped_mtime = mtime("untyped.prom"),
    );
    assert!(out.starts_with(&expected), "{out}");
    // Only the broken files: no error.
    std::fs::remove_file(dir.path().join("broken.prom")).unwrap();
    std::fs::remove_file(dir.path().join("stamped.prom")).unwrap();
    node.collect(&mut out);
    assert!(out.contains("\nnode_textfile_scrape_error 0\n"), "{out}");
    // Over the file-count limit: the first files by name are read, and the rest is an error.
    node.state.textfile = textfile::State::new(dir.path(), 1, 4096, &node_limits());
    node.collect(&mut out);
    assert!(out.contains("backup_last_success_seconds{target=\"db\"} 1700000000\n"));
    assert!(!out.contains("raid_ok"));
    assert!(out.contains("\nnode_textfile_scrape_error 1\n"), "{out}");
    // Over the byte limit: skipped.
    node.state.textfile = textfile::State::new(dir.path(), 10, 100, &node_limits());
    node.collect(&mut out);
    assert!(!out.contains("backup_last_success_seconds{"));
    assert!(out.contains("raid_ok 1\n"));
    assert!(out.contains("\nnode_textfile_scrape_error 1\n"));
}

#[test]
fn textfile_without_a_directory_reports_no_error() {
    assert_eq!(
        samples_of(Collector::Textfile, &no_rootfs()),
        ["node_textfile_scrape_error 0"]
    );
}

#[test]
fn schedstat_dmi_nvme_and_rapl() {
    assert_eq!(
        samples_of(Collector::Schedstat, &no_rootfs()),
        [
            "node_schedstat_running_seconds_total{cpu=\"0\"} 2.398485193",
            "node_schedstat_running_seconds_total{cpu=\"1\"} 1.912320583",
            "node_schedstat_waiting_seconds_total{cpu=\"0\"} 0.114474378",
            "node_schedstat_waiting_seconds_total{cpu=\"1\"} 0.097163729",
            "node_schedstat_timeslices_total{cpu=\"0\"} 13454",
            "node_schedstat_timeslices_total{cpu=\"1\"} 10981",
        ]
    );
    assert_eq!(
        samples_of(Collector::Dmi, &no_rootfs()),
        [
            "node_dmi_info{bios_version=\"1.16.3\",product_name=\"Standard PC (Q35 + ICH9, 2009)\",\
          system_vendor=\"QEMU\"} 1"
        ]
    );
    assert_eq!(
        samples_of(Collector::Nvme, &no_rootfs()),
        [
            "node_nvme_info{device=\"nvme0\",firmware_revision=\"1.2.3\",model=\"QEMU NVMe Ctrl\",\
          serial=\"deadbeef\",state=\"live\"} 1"
        ]
    );
    let rapl = samples_of(Collector::Rapl, &no_rootfs());
    let sysfs = fixture_paths(&no_rootfs()).sysfs;
    assert_eq!(
        rapl,
        [format!(
            "node_rapl_package_joules_total{{index=\"0\",path=\"{}\"}} 5",
            sysfs.join("class/powercap/intel-rapl:0").display()
        )]
    );
    // No EDAC driver in the fixture: no series, and no failure.
    assert!(samples_of(Collector::Edac, &no_rootfs()).is_empty());
}

#[test]
fn ipvs_totals_and_backends() {
    assert_eq!(
        samples_of(Collector::Ipvs, &no_rootfs()),
        [
            "node_ipvs_connections_total 26",
            "node_ipvs_incoming_packets_total 255",
            "node_ipvs_outgoing_packets_total 0",
            "node_ipvs_incoming_bytes_total 4096",
            "node_ipvs_outgoing_bytes_total 0",
            "node_ipvs_backend_connections_active{local_address=\"10.96.0.1\",local_port=\"443\",\
             remote_address=\"10.244.1.2\",remote_port=\"9090\",proto=\"TCP\",local_mark=\"\"} 2",
            "node_ipvs_backend_connections_inactive{local_address=\"10.96.0.1\",local_port=\"443\",\
             remote_address=\"10.244.1.2\",remote_port=\"9090\",proto=\"TCP\",local_mark=\"\"} 3",
            "node_ipvs_backend_weight{local_address=\"10.96.0.1\",local_port=\"443\",\
             remote_address=\"10.244.1.2\",remote_port=\"9090\",proto=\"TCP\",local_mark=\"\"} 1",
        ]
    );
}

#[test]
fn nfs_client_counts_and_absent_versions_as_zero() {
    let lines = samples_of(Collector::Nfs, &no_rootfs());
    // 2 packet series, 4 single counters, 18 + 22 + 59 procedures.
    assert_eq!(lines.len(), 2 + 4 + 18 + 22 + 59);
    for line in [
        "node_nfs_packets_total{protocol=\"tcp\"} 10",
        "node_nfs_connections_total 2",
        "node_nfs_rpcs_total 500",
        "node_nfs_rpc_retransmissions_total 1",
        "node_nfs_requests_total{method=\"GetAttr\",proto=\"3\"} 9",
        "node_nfs_requests_total{method=\"Read\",proto=\"3\"} 7",
        "node_nfs_requests_total{method=\"ReadDirPlus\",proto=\"3\"} 1",
        "node_nfs_requests_total{method=\"GetAttr\",proto=\"2\"} 0",
        "node_nfs_requests_total{method=\"Clone\",proto=\"4\"} 0",
    ] {
        assert!(lines.iter().any(|l| l == line), "missing {line}");
    }
}

#[test]
fn nfsd_server_counts() {
    let lines = samples_of(Collector::Nfsd, &no_rootfs());
    // 11 single counters and gauges, 2 packet and 3 error series, 17 + 21 + 33 requests.
    assert_eq!(lines.len(), 11 + 2 + 3 + 17 + 21 + 33, "{lines:#?}");
    for line in [
        "node_nfsd_reply_cache_hits_total 1",
        "node_nfsd_reply_cache_nocache_total 3",
        "node_nfsd_file_handles_stale_total 4",
        "node_nfsd_disk_bytes_written_total 6",
        "node_nfsd_server_threads 8",
        "node_nfsd_read_ahead_cache_size_blocks 0",
        "node_nfsd_packets_total{proto=\"tcp\"} 10",
        "node_nfsd_requests_total{method=\"GetAttr\",proto=\"3\"} 1",
        "node_nfsd_requests_total{method=\"Write\",proto=\"3\"} 3",
        "node_nfsd_requests_total{method=\"Access\",proto=\"4\"} 9",
        "node_nfsd_requests_total{method=\"FsStat\",proto=\"2\"} 0",
    ] {
        assert!(lines.iter().any(|l| l == line), "missing {line}");
    }
}

#[test]
fn tapestats_and_fibrechannel() {
    let tape = samples_of(Collector::Tapestats, &no_rootfs());
    assert_eq!(tape.len(), 10);
    assert!(tape.contains(&"node_tape_io_time_seconds_total{device=\"st0\"} 2".to_string()));
    let fc = samples_of(Collector::Fibrechannel, &no_rootfs());
    assert_eq!(
        fc[0],
        "node_fibrechannel_info{fc_host=\"host1\",speed=\"8 Gbit\",port_state=\"Online\",\
         port_type=\"NPort (fabric via point-to-point)\",port_id=\"010203\",port_name=\"10000000c9a1b2c3\",\
         fabric_name=\"1000000533f1e2d4\",dev_loss_tmo=\"30\",symbolic_name=\"Emulex LPe12002\",\
         supported_classes=\"Class 3\",supported_speeds=\"2 Gbit, 4 Gbit, 8 Gbit\"} 1"
    );
    // Counters the adapter does not have count as zero, as node_exporter reports them.
    assert_eq!(fc.len(), 1 + 14);
    assert!(fc.contains(&"node_fibrechannel_rx_frames_total{fc_host=\"host1\"} 16".to_string()));
    assert!(fc.contains(&"node_fibrechannel_nos_total{fc_host=\"host1\"} 0".to_string()));
}

#[test]
fn infiniband_and_zfs() {
    let ib = samples_of(Collector::Infiniband, &no_rootfs());
    assert_eq!(
        ib,
        [
            "node_infiniband_info{device=\"mlx5_0\",board_id=\"MT_0000000010\",firmware_version=\"16.35.2000\",\
             hca_type=\"\"} 1",
            "node_infiniband_state_id{device=\"mlx5_0\",port=\"1\"} 4",
            "node_infiniband_physical_state_id{device=\"mlx5_0\",port=\"1\"} 5",
            "node_infiniband_rate_bytes_per_second{device=\"mlx5_0\",port=\"1\"} 3125000000",
            "node_infiniband_link_downed_total{device=\"mlx5_0\",port=\"1\"} 1",
            // Data counters count 4-byte words.
            "node_infiniband_port_data_transmitted_bytes_total{device=\"mlx5_0\",port=\"1\"} 4000",
        ]
    );
    let zfs = samples_of(Collector::Zfs, &no_rootfs());
    assert_eq!(
        zfs[..3],
        [
            "node_zfs_arc_hits 8772612",
            "node_zfs_arc_misses 604635",
            "node_zfs_arc_c 1073741824"
        ]
    );
    assert_eq!(zfs.len(), 3 + 6);
    assert!(zfs.contains(&"node_zfs_zpool_state{zpool=\"tank\",state=\"online\"} 1".to_string()));
    assert!(zfs.contains(&"node_zfs_zpool_state{zpool=\"tank\",state=\"faulted\"} 0".to_string()));
}

#[test]
fn absent_bcache_btrfs_and_xfs_are_no_error() {
    // No module loaded: no directory under /sys/fs, nothing to report, as node_exporter.
    for collector in [Collector::Bcache, Collector::Btrfs, Collector::Xfs] {
        assert_eq!(
            samples_of(collector, &no_rootfs()),
            Vec::<String>::new(),
            "{collector:?}"
        );
    }
}

/// The filters the agent applies when the plan leaves an option out are the node_exporter
/// defaults the compiler documents (and the spec reference lists): the hand-written matchers
/// and the patterns agree on this machine's names and on the corner cases of each.
#[test]
fn built_in_filters_are_the_documented_default_patterns() {
    use outpost_compiler::compile::defaults as documented;
    let pattern = |text: &str| Pattern::new("default", text).unwrap();
    let lines = |path: &str| std::fs::read_to_string(path).unwrap_or_default();

    let mut mount_points: Vec<String> = [
        "/",
        "/dev",
        "/dev/shm",
        "/devices",
        "/proc",
        "/proc/sys/fs/binfmt_misc",
        "/run",
        "/run/user/1000",
        "/runner",
        "/sys",
        "/sys/fs/cgroup",
        "/mnt",
        "/mnt/data",
        "/media/usb",
        "/home",
        "/var/lib/docker",
        "/var/lib/docker/overlay2/abc/merged",
        "/var/lib/containers/storage/overlay",
        "/var/lib/kubelet",
        "/boot/efi",
        "relative",
    ]
    .map(String::from)
    .to_vec();
    mount_points.extend(
        lines("/proc/1/mounts")
            .lines()
            .filter_map(|l| l.split(' ').nth(1).map(String::from)),
    );
    let mut excluded = pattern(documented::DEFAULT_MOUNT_POINTS_EXCLUDE);
    for m in &mount_points {
        assert_eq!(
            excluded.is_match(m),
            filesystem::mount_point_excluded(m),
            "mount point {m}"
        );
    }

    let mut fs_types: Vec<String> = [
        "cgroup",
        "cgroup2",
        "cgroup3",
        "ext4",
        "overlay",
        "overlayfs",
        "nfs4",
        "proc",
        "procfs",
    ]
    .map(String::from)
    .to_vec();
    fs_types.extend(
        lines("/proc/filesystems")
            .lines()
            .filter_map(|l| l.split_whitespace().last().map(String::from)),
    );
    let mut excluded = pattern(documented::DEFAULT_FS_TYPES_EXCLUDE);
    for t in &fs_types {
        assert_eq!(
            excluded.is_match(t),
            filesystem::fs_type_excluded(t),
            "fs type {t}"
        );
    }

    let mut disks: Vec<String> = [
        "sda",
        "sda1",
        "sdaa1",
        "vdb3",
        "xvda1",
        "hda12",
        "nvme0n1",
        "nvme0n1p1",
        "nvme10n2p13",
        "loop0",
        "loop",
        "ram15",
        "fd0",
        "dm-0",
        "md0",
        "sr0",
        "mmcblk0",
        "mmcblk0p1",
    ]
    .map(String::from)
    .to_vec();
    disks.extend(
        lines("/proc/diskstats")
            .lines()
            .filter_map(|l| l.split_whitespace().nth(2).map(String::from)),
    );
    let mut excluded = pattern(documented::DEFAULT_DISKSTATS_DEVICE_EXCLUDE);
    for d in &disks {
        assert_eq!(excluded.is_match(d), diskstats::disk_excluded(d), "disk {d}");
    }

    let mut excluded = pattern(documented::DEFAULT_NETDEV_DEVICE_EXCLUDE);
    let mut ignored = pattern(documented::DEFAULT_NETCLASS_IGNORED_DEVICES);
    for device in ["lo", "lo0", "eth0", "veth1a2b", "bond0"] {
        assert_eq!(excluded.is_match(device), device == "lo", "netdev {device}");
        assert!(
            !ignored.is_match(device),
            "netclass ignores nothing by default: {device}"
        );
    }

    // netstat's fields are `<protocol>_<name>` from the header lines of /proc/net/netstat and
    // /proc/net/snmp (`TcpExt: SyncookiesSent ...`), plus the corner cases.
    let mut fields: Vec<(String, String)> = [
        ("Tcp", "InErrs"),
        ("Udp", "InErrors"),
        ("Ip", "Forwarding"),
        ("Ip", "InOctets"),
        ("Ip6", "InOctets"),
        ("IpExt", "OutOctets"),
        ("Icmp6", "OutMsgs"),
        ("TcpExt", "ListenDrops"),
        ("TcpExt", "SyncookiesFailed"),
        ("TcpExt", "TCPTimeouts"),
        ("TcpExt", "TCPTimeoutsX"),
        ("Udp6", "RcvbufErrors"),
        ("UdpLite", "InDatagrams"),
    ]
    .map(|(p, n)| (p.to_string(), n.to_string()))
    .to_vec();
    for file in ["/proc/net/netstat", "/proc/net/snmp"] {
        for line in lines(file).lines().step_by(2) {
            let mut words = line.split_whitespace();
            let protocol = words.next().unwrap_or("").trim_end_matches(':').to_string();
            fields.extend(words.map(|n| (protocol.clone(), n.to_string())));
        }
    }
    let mut selected = pattern(documented::DEFAULT_NETSTAT_FIELDS);
    for (protocol, name) in &fields {
        let key = format!("{protocol}_{name}");
        assert_eq!(
            selected.is_match(&key),
            netstat::default_field(protocol, name),
            "netstat {key}"
        );
    }

    let mut vmstat: Vec<String> = [
        "oom_kill",
        "pgpgin",
        "pswpout",
        "pgfault",
        "pgmajfault",
        "pgmajfault_s",
        "thp_fault_alloc",
        "nr_free_pages",
    ]
    .map(String::from)
    .to_vec();
    vmstat.extend(
        lines("/proc/vmstat")
            .lines()
            .filter_map(|l| l.split(' ').next().map(String::from)),
    );
    let mut selected = pattern(documented::DEFAULT_VMSTAT_FIELDS);
    for field in &vmstat {
        assert_eq!(
            selected.is_match(field),
            vmstat::vmstat_field_selected(field),
            "vmstat {field}"
        );
    }
}
