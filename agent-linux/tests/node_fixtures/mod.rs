//! A `/proc`, `/sys` and root tree for the collectors whose hardware this machine lacks:
//! software RAID, bonding, hwmon chips, thermal zones, power supplies and CPU frequency
//! scaling. Every file is written here from the kernel's documentation of its format
//! (Documentation/admin-guide/md.rst, networking/bonding.rst, hwmon/sysfs-interface.rst,
//! ABI/testing/sysfs-class-thermal, sysfs-class-power, admin-guide/pm/cpufreq.rst), with
//! values chosen to reach the corner cases: a degraded array with a failed and a spare disk,
//! a recovery in progress, raid0, an inactive array, a check; bonding slaves under both the
//! old and the new directory names; sensors in a chip's own directory and in its device
//! directory, labels, alarms, beeps and every unit node_exporter converts; a battery, a mains
//! adapter and a USB-C port; a CPU without cpufreq and one without the root-only
//! `cpuinfo_cur_freq`.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

pub struct Tree {
    dir: tempfile::TempDir,
}

/// The collectors (node_exporter's names) this tree is for.
pub const COLLECTORS: [&str; 21] = [
    "bcache",
    "bonding",
    "btrfs",
    "cpufreq",
    "dmi",
    "edac",
    "fibrechannel",
    "hwmon",
    "infiniband",
    "ipvs",
    "mdadm",
    "nfs",
    "nfsd",
    "nvme",
    "powersupplyclass",
    "rapl",
    "schedstat",
    "tapestats",
    "thermal_zone",
    "xfs",
    "zfs",
];

impl Tree {
    pub fn procfs(&self) -> PathBuf {
        self.dir.path().join("proc")
    }

    pub fn sysfs(&self) -> PathBuf {
        self.dir.path().join("sys")
    }

    pub fn rootfs(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    fn file(&self, rel: &str, content: &str) {
        let path = self.dir.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }

    /// Sysfs attributes: one file per `name value` pair, each value followed by a newline.
    fn attributes(&self, dir: &str, pairs: &[(&str, &str)]) {
        for (name, value) in pairs {
            self.file(&format!("{dir}/{name}"), &format!("{value}\n"));
        }
    }

    fn link(&self, rel: &str, target: &str) {
        let path = self.dir.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        symlink(target, &path).unwrap();
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

pub fn build() -> Tree {
    let t = Tree {
        dir: tempfile::tempdir().unwrap(),
    };
    std::fs::create_dir_all(t.rootfs()).unwrap();
    mdstat(&t);
    bonding(&t);
    hwmon(&t);
    thermal(&t);
    power_supplies(&t);
    cpufreq(&t);
    schedstat(&t);
    dmi(&t);
    edac(&t);
    rapl(&t);
    nvme(&t);
    ipvs(&t);
    nfs(&t);
    nfsd(&t);
    tapes(&t);
    fibre_channel(&t);
    bcache(&t);
    btrfs(&t);
    infiniband(&t);
    xfs(&t);
    zfs(&t);
    t
}

fn tapes(t: &Tree) {
    // st0 and its no-rewind twin nst0 (the same drive, not counted twice).
    t.attributes(
        "sys/class/scsi_tape/st0/stats",
        &[
            ("in_flight", "1"),
            ("io_ns", "9247011087720"),
            ("other_cnt", "1409"),
            ("read_byte_cnt", "979383912"),
            ("read_cnt", "3741"),
            ("read_ns", "33788355744"),
            ("resid_cnt", "19"),
            ("write_byte_cnt", "1496246784000"),
            ("write_cnt", "53772916"),
            ("write_ns", "5233597394395"),
        ],
    );
    t.attributes("sys/class/scsi_tape/nst0/stats", &[("in_flight", "1")]);
}

fn fibre_channel(t: &Tree) {
    t.attributes(
        "sys/class/fc_host/host0",
        &[
            ("speed", "16 Gbit"),
            ("port_state", "Online"),
            ("port_type", "Point-To-Point (direct nport connection)"),
            ("node_name", "0x2000f4e9d4aa6d21"),
            ("port_id", "0x000002"),
            ("port_name", "0x1000f4e9d4aa6d21"),
            ("fabric_name", "0x0"),
            ("dev_loss_tmo", "30"),
            ("symbolic_name", "QLE2742 FW:v8.08.231 DVR:v10.02.06.200-k"),
            ("supported_classes", "Class 3"),
            ("supported_speeds", "4 Gbit, 8 Gbit, 16 Gbit"),
        ],
    );
    t.attributes(
        "sys/class/fc_host/host0/statistics",
        &[
            ("dumped_frames", "0xffffffffffffffff"),
            ("error_frames", "0x0"),
            ("invalid_crc_count", "0x2"),
            ("rx_frames", "0x3e8"),
            ("rx_words", "0x1f40"),
            ("tx_frames", "0x64"),
            ("tx_words", "0x1b58"),
            ("seconds_since_last_reset", "0x7b"),
            ("invalid_tx_word_count", "0x4"),
            ("link_failure_count", "0x1"),
            ("loss_of_sync_count", "0x3"),
            ("loss_of_signal_count", "0x0"),
            ("nos_count", "0x5"),
            ("fcp_packet_aborts", "0x9"),
            ("lip_count", "0x0"),
            ("reset_statistics", ""),
        ],
    );
}

fn nfsd(t: &Tree) {
    // A server of an older kernel: the thread line with its usage histogram, a read-ahead line.
    t.file(
        "proc/net/rpc/nfsd",
        "rc 0 6 18622\n\
         fh 0 0 0 0 0\n\
         io 157286400 72864\n\
         th 8 0 0.000 0.000 0.000 0.000 0.000 0.000 0.000 0.000 0.000 0.000\n\
         ra 32 0 0 0 0 0 0 0 0 0 0 0\n\
         net 18628 0 18628 6\n\
         rpc 18628 3 1 2 0\n\
         proc2 18 2 69 0 0 4410 0 0 0 0 0 0 0 0 0 0 0 99 2\n\
         proc3 22 2 112 0 2719 111 0 0 0 0 0 0 0 0 0 0 0 27 216 0 2 1 0\n\
         proc4 2 2 10853\n\
         proc4ops 72 0 0 0 1098 2 0 0 0 0 8179 5896 0 0 0 0 5900 0 0 2 0 2 0 9609 0 2 150 1272 0 0 0 1236 2          0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n",
    );
}

fn nfs(t: &Tree) {
    // A client that has used NFSv3 and v4 (no proc2 line: its procedures count as zero); the
    // proc4 line of an older kernel, with fewer procedures than node_exporter names.
    t.file(
        "proc/net/rpc/nfs",
        "net 18628 0 18628 6\n\
         rpc 4329785 12 20\n\
         proc3 22 1 4084749 29200 94754 32580 186 47747 7840 4 5 0 0 17 0 0 0 1 0 2 0 0 0\n\
         proc4 48 0 117 3 0 29 0 0 0 25 4 1 0 1 1 0 0 0 86 1032 34 0 0 5 0 0 0 10 4 0 9 5 0 0 0 0 0 2          0 1 1 3 0 0 0 0 0 0 0\n",
    );
}

fn ipvs(t: &Tree) {
    // Totals in hexadecimal, then the rates (not read).
    t.file(
        "proc/net/ip_vs_stats",
        "   Total Incoming Outgoing         Incoming         Outgoing\n\
         \x20  Conns  Packets  Packets            Bytes            Bytes\n\
         \x20 2A3F10 1E8480A3        0     7D2B7A4C11        0\n\
         \n\
         \x20Conns/s   Pkts/s   Pkts/s          Bytes/s          Bytes/s\n\
         \x20      3     1F40        0           8CA000        0\n",
    );
    // Services (IPv4, a firewall mark, IPv6, an IPv4-mapped address) and their real servers;
    // the same backend twice under one service is summed.
    t.file(
        "proc/net/ip_vs",
        "IP Virtual Server version 1.2.1 (size=4096)\n\
         Prot LocalAddress:Port Scheduler Flags\n\
         \x20 -> RemoteAddress:Port Forward Weight ActiveConn InActConn\n\
         TCP  0A600001:01BB rr\n\
         \x20 -> 0AF40102:2382      Masq    1      12         3\n\
         \x20 -> 0AF40203:2382      Masq    1      9          0\n\
         UDP  0A60000A:0035 rr\n\
         \x20 -> 0AF40005:0035      Masq    1      0          41\n\
         \x20 -> 0AF40005:0035      Masq    2      0          1\n\
         FWM  00000010 wlc\n\
         \x20 -> C0A8321A:0CEA      Route   0      0          1\n\
         TCP  [fd00:0010:0096:0000:0000:0000:0000:0001]:01BB rr\n\
         \x20 -> [fd00:0010:0244:0001:0000:0000:0000:0005]:2382      Masq    1      4          0\n\
         TCP  [0000:0000:0000:0000:0000:ffff:0a60:0002]:0050 rr\n\
         \x20 -> [0000:0000:0000:0000:0000:ffff:0af4:0107]:1f90      Masq    1      1          2\n",
    );
}

fn rapl(t: &Tree) {
    // The control type's directory has no name and is not a zone.
    t.attributes("sys/class/powercap/intel-rapl", &[("enabled", "1")]);
    let zones = [
        ("intel-rapl:0", "package-0", "123456789012"),
        ("intel-rapl:0:0", "core", "45678901234"),
        ("intel-rapl:0:1", "uncore", "1234567"),
        ("intel-rapl:1", "package-1", "98765432109"),
        ("intel-rapl:1:0", "core", "3456789"),
        ("intel-rapl:0:2", "dram", "0"),
    ];
    for (dir, name, energy) in zones {
        t.attributes(
            &format!("sys/class/powercap/{dir}"),
            &[
                ("name", name),
                ("energy_uj", energy),
                ("max_energy_range_uj", "262143328850"),
            ],
        );
    }
}

fn nvme(t: &Tree) {
    t.attributes(
        "sys/class/nvme/nvme0",
        &[
            ("firmware_rev", "2B2QEXM7"),
            ("model", "Samsung SSD 970 EVO Plus 1TB"),
            ("serial", "S4EWNX0R123456"),
            ("state", "live"),
        ],
    );
}

fn schedstat(t: &Tree) {
    // Version 15 of the format: nine numbers per CPU, then the CPU's scheduling domains.
    t.file(
        "proc/schedstat",
        "version 15\ntimestamp 4295016345\n\
         cpu0 0 0 0 0 0 0 2398485193 114474378 13454\n\
         domain0 00000003 4041 3957 51 53 37 0 0 3927 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n\
         cpu1 0 0 0 0 0 0 1912320583 97163729 10981\n\
         domain0 00000003 4030 3960 38 46 32 0 0 3922 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n",
    );
}

fn dmi(t: &Tree) {
    t.attributes(
        "sys/class/dmi/id",
        &[
            ("bios_date", "03/14/2023"),
            ("bios_vendor", "LENOVO"),
            ("bios_version", "N2HET71W (1.54 )"),
            ("board_name", "20QD00L9GE"),
            ("board_vendor", "LENOVO"),
            ("chassis_type", "10"),
            ("chassis_vendor", "LENOVO"),
            ("product_family", "ThinkPad X1 Carbon 7th"),
            ("product_name", "20QD00L9GE"),
            ("product_serial", "PF1ABCDE"),
            ("sys_vendor", "LENOVO"),
            ("modalias", "dmi:bvnLENOVO:bvrN2HET71W"),
            ("uevent", "MODALIAS=dmi:bvnLENOVO"),
        ],
    );
}

fn edac(t: &Tree) {
    let mc = "sys/devices/system/edac/mc/mc0";
    t.attributes(
        mc,
        &[
            ("ce_count", "3"),
            ("ce_noinfo_count", "1"),
            ("ue_count", "0"),
            ("ue_noinfo_count", "0"),
        ],
    );
    t.attributes(&format!("{mc}/csrow0"), &[("ce_count", "2"), ("ue_count", "0")]);
    t.attributes(&format!("{mc}/csrow1"), &[("ce_count", "0"), ("ue_count", "0")]);
}

fn mdstat(t: &Tree) {
    // A raw string: md(4)'s status lines are indented, and the indentation is significant.
    t.file(
        "proc/mdstat",
        r"Personalities : [raid0] [raid1] [raid6] [raid5] [raid4]
md0 : active raid1 sdb1[1] sda1[0]
      1046528 blocks super 1.2 [2/2] [UU]

md1 : active raid1 sdd1[2](F) sdc1[0]
      2096128 blocks super 1.2 [2/1] [U_]
      bitmap: 0/1 pages [0KB], 65536KB chunk

md2 : active raid5 sdh1[4] sdg1[2] sdf1[1] sde1[0] sdi1[5](S)
      5860270080 blocks super 1.2 level 5, 512k chunk, algorithm 2 [4/3] [UUU_]
      [=>...................]  recovery =  8.5% (166424704/1953423360) finish=195.2min speed=152560K/sec

md3 : active raid0 sdk1[1] sdj1[0]
      4190208 blocks super 1.2 512k chunks

md4 : inactive sdl1[0](S)
      1048576 blocks super 1.2

md5 : active raid1 sdn1[1] sdm1[0]
      1046528 blocks super 1.2 [2/2] [UU]
      [===>.................]  check = 17.2% (180224/1046528) finish=0.6min speed=22528K/sec

md6 : active raid1 sdp1[1] sdo1[0]
      1046528 blocks super 1.2 [2/2] [UU]
        resync=DELAYED

unused devices: <none>
",
    );
}

fn bonding(t: &Tree) {
    t.file("sys/class/net/bonding_masters", "bond0 bond1\n");
    t.file("sys/class/net/bond0/bonding/slaves", "eth1 eth2\n");
    t.file("sys/class/net/bond0/lower_eth1/bonding_slave/mii_status", "up\n");
    t.file(
        "sys/class/net/bond0/lower_eth2/bonding_slave/mii_status",
        "down\n",
    );
    // Kernels before 4.13 name the slave's directory slave_<name>.
    t.file("sys/class/net/bond1/bonding/slaves", "eth3\n");
    t.file("sys/class/net/bond1/slave_eth3/bonding_slave/mii_status", "up\n");
}

fn hwmon(t: &Tree) {
    // A CPU package sensor: the class entry links to the chip under its platform device.
    let coretemp = "sys/devices/platform/coretemp.0";
    t.link(
        "sys/class/hwmon/hwmon0",
        "../../devices/platform/coretemp.0/hwmon/hwmon0",
    );
    t.link(&format!("{coretemp}/hwmon/hwmon0/device"), "../../../coretemp.0");
    t.attributes(
        &format!("{coretemp}/hwmon/hwmon0"),
        &[
            ("name", "coretemp"),
            ("temp1_input", "42000"),
            ("temp1_label", "Package id 0"),
            ("temp1_max", "80000"),
            ("temp1_crit", "100000"),
            ("temp1_crit_alarm", "0"),
            ("temp2_input", "40000"),
            ("temp2_label", "Core 0"),
        ],
    );
    // Older drivers keep sensor files in the device directory.
    t.attributes(coretemp, &[("temp3_input", "39000"), ("temp3_label", "Core 1")]);
    // A Super-I/O chip with fans, voltages, PWM, current, power, energy and alarms.
    let nct = "sys/devices/platform/nct6775.656";
    t.link(
        "sys/class/hwmon/hwmon1",
        "../../devices/platform/nct6775.656/hwmon/hwmon1",
    );
    t.link(&format!("{nct}/hwmon/hwmon1/device"), "../../../nct6775.656");
    t.attributes(
        &format!("{nct}/hwmon/hwmon1"),
        &[
            ("name", "nct6779"),
            ("fan1_input", "1200"),
            ("fan1_min", "300"),
            ("fan1_alarm", "0"),
            ("fan1_beep", "1"),
            ("fan2_input", "0"),
            ("fan2_target", "900"),
            ("in0_input", "1024"),
            ("in0_min", "0"),
            ("in0_max", "1744"),
            ("in0_label", "Vcore"),
            ("cpu0_vid", "1100"),
            ("pwm1", "128"),
            ("pwm1_enable", "2"),
            ("pwm1_mode", "1"),
            ("curr1_input", "1500"),
            ("curr1_max", "20000"),
            ("power1_input", "12500000"),
            ("power1_average_interval", "1000"),
            ("power1_accuracy", "50000"),
            ("energy1_input", "1234567890"),
            ("humidity1_input", "45000"),
            ("intrusion0_alarm", "1"),
            ("beep_enable", "1"),
            ("vrm", "90"),
            ("update_interval", "2000"),
            ("temp7_input", "33000"),
            ("temp7_type", "4"),
        ],
    );
    // A chip without a device, known by its name only.
    t.attributes(
        "sys/class/hwmon/hwmon2",
        &[
            ("name", "acpitz"),
            ("temp1_input", "27800"),
            ("temp1_crit", "119000"),
        ],
    );
}

fn thermal(t: &Tree) {
    t.attributes(
        "sys/class/thermal/thermal_zone0",
        &[
            ("type", "x86_pkg_temp"),
            ("policy", "step_wise"),
            ("temp", "45000"),
            ("mode", "enabled"),
        ],
    );
    t.attributes(
        "sys/class/thermal/thermal_zone1",
        &[("type", "acpitz"), ("policy", "step_wise"), ("temp", "-2500")],
    );
    t.attributes(
        "sys/class/thermal/cooling_device0",
        &[("type", "Processor"), ("cur_state", "0"), ("max_state", "10")],
    );
    t.attributes(
        "sys/class/thermal/cooling_device1",
        &[
            ("type", "intel_powerclamp"),
            ("cur_state", "2"),
            ("max_state", "50"),
        ],
    );
}

fn power_supplies(t: &Tree) {
    t.attributes("sys/class/power_supply/AC", &[("type", "Mains"), ("online", "1")]);
    t.attributes(
        "sys/class/power_supply/BAT0",
        &[
            ("type", "Battery"),
            ("status", "Discharging"),
            ("present", "1"),
            ("technology", "Li-ion"),
            ("cycle_count", "42"),
            ("voltage_min_design", "11100000"),
            ("voltage_now", "12044000"),
            ("current_now", "1203000"),
            ("charge_full_design", "4400000"),
            ("charge_full", "3800000"),
            ("charge_now", "2500000"),
            ("capacity", "65"),
            ("capacity_level", "Normal"),
            ("model_name", "DELL 1VX1H"),
            ("manufacturer", "SMP"),
            ("serial_number", "  1234"),
            ("temp", "251"),
            ("time_to_empty_now", "7200"),
        ],
    );
    t.attributes(
        "sys/class/power_supply/ucsi-source-psy-USBC000:001",
        &[
            ("type", "USB"),
            ("usb_type", "[C] PD PD_PPS"),
            ("online", "0"),
            ("voltage_min", "5000000"),
            ("voltage_max", "20000000"),
            ("current_max", "3000000"),
            ("scope", "Unknown"),
        ],
    );
}

fn cpufreq(t: &Tree) {
    for cpu in 0..2 {
        let dir = format!("sys/devices/system/cpu/cpu{cpu}/cpufreq");
        t.attributes(
            &dir,
            &[
                ("cpuinfo_min_freq", "800000"),
                ("cpuinfo_max_freq", "3400000"),
                ("cpuinfo_transition_latency", "0"),
                ("scaling_cur_freq", if cpu == 0 { "1800000" } else { "2400123" }),
                ("scaling_min_freq", "800000"),
                ("scaling_max_freq", "3400000"),
                ("scaling_available_governors", "performance powersave"),
                ("scaling_driver", "intel_pstate"),
                ("scaling_governor", "powersave"),
                ("related_cpus", &cpu.to_string()),
                ("scaling_setspeed", "<unsupported>"),
            ],
        );
    }
    // Readable by root only on real systems; present for cpu0 here.
    t.file(
        "sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_cur_freq",
        "1799999\n",
    );
    // A CPU without frequency scaling.
    t.file("sys/devices/system/cpu/cpu2/online", "1\n");
}

fn bcache(t: &Tree) {
    // Documentation/admin-guide/bcache.rst: a cache set's directory links its backing devices
    // (bdev<n>) and cache devices (cache<n>); sizes are bch_hprint'ed ("12.5M").
    let set = "sys/fs/bcache/deaddd54-c735-46d5-868e-f331c5fd7c74";
    t.file("sys/fs/bcache/register", "");
    t.file("sys/fs/bcache/register_quiet", "");
    t.attributes(
        set,
        &[
            ("average_key_size", "19.2k"),
            ("btree_cache_size", "12.5M"),
            ("cache_available_percent", "97"),
            ("congested", "0"),
            ("root_usage_percent", "8"),
            ("tree_depth", "2"),
            ("block_size", "4.0k"),
        ],
    );
    t.attributes(
        &format!("{set}/internal"),
        &[
            ("active_journal_entries", "3"),
            ("btree_nodes", "412"),
            ("btree_read_average_duration_us", "1532"),
            ("cache_read_races", "7"),
        ],
    );
    for period in ["stats_total", "stats_five_minute"] {
        t.attributes(
            &format!("{set}/{period}"),
            &[
                ("bypassed", "1.4G"),
                ("cache_hits", "301926"),
                ("cache_misses", "40021"),
                ("cache_bypass_hits", "129"),
                ("cache_bypass_misses", "0"),
                ("cache_miss_collisions", "12"),
                ("cache_readaheads", "0"),
            ],
        );
    }
    let sdb = "sys/devices/pci0000:00/0000:00:1f.2/ata2/host1/target1:0:0/1:0:0:0/block/sdb/bcache";
    let sdc = "sys/devices/pci0000:00/0000:00:1f.2/ata3/host2/target2:0:0/2:0:0:0/block/sdc/bcache";
    let nvme = "sys/devices/pci0000:00/0000:00:1d.0/0000:3d:00.0/nvme/nvme0/nvme0n1/bcache";
    t.link(&format!("{set}/bdev0"), &format!("../../../{}", &sdb[4..]));
    t.link(&format!("{set}/bdev1"), &format!("../../../{}", &sdc[4..]));
    t.link(&format!("{set}/cache0"), &format!("../../../{}", &nvme[4..]));
    for (dir, dirty, rate_debug) in [
        (
            sdb,
            "2.5G",
            "rate:\t\t1.1M/sec\ndirty:\t\t2.5G\ntarget:\t\t14.4G\nproportional:\t-291.7k\nintegral:\t12.0k\nchange:\t\t-280.1k/sec\nnext io:\t-1ms\n",
        ),
        (
            sdc,
            "0",
            "rate:\t\t4.0k/sec\ndirty:\t\t0\ntarget:\t\t9.6G\nproportional:\t0\nintegral:\t0\nchange:\t\t0/sec\nnext io:\t2ms\n",
        ),
    ] {
        t.attributes(dir, &[("dirty_data", dirty)]);
        t.file(&format!("{dir}/writeback_rate_debug"), rate_debug);
        t.attributes(
            &format!("{dir}/stats_total"),
            &[
                ("bypassed", "712.3M"),
                ("cache_hits", "150963"),
                ("cache_misses", "20010"),
                ("cache_bypass_hits", "64"),
                ("cache_bypass_misses", "0"),
                ("cache_miss_collisions", "6"),
                ("cache_readaheads", "0"),
            ],
        );
        t.attributes(&format!("{dir}/stats_five_minute"), &[("cache_hits", "12")]);
    }
    t.attributes(
        nvme,
        &[
            ("io_errors", "0"),
            ("metadata_written", "1.9G"),
            ("written", "39.1G"),
            ("priority_stats", "Unused:\t\t3%\nMetadata:\t1%\n"),
        ],
    );
    // A second set that has only just been registered: no internal directory or totals yet
    // (absent files count as 0), one backing device.
    let other = "sys/fs/bcache/1a2b3c4d-0000-4e5f-8a9b-aabbccddeeff";
    t.attributes(other, &[("tree_depth", "1"), ("cache_available_percent", "100")]);
    t.attributes(&format!("{other}/bdev0"), &[("dirty_data", "0")]);
    t.file(
        &format!("{other}/bdev0/writeback_rate_debug"),
        "rate:\t\t512/sec\ndirty:\t\t0\ntarget:\t\t0\nproportional:\t0\nintegral:\t0\nchange:\t\t0/sec\nnext io:\t0ms\n",
    );
}

fn btrfs(t: &Tree) {
    // ABI/testing/sysfs-fs-btrfs: one directory per filesystem UUID; `devices` links each
    // member's block device (whose `size` counts 512-byte sectors).
    t.file("sys/fs/btrfs/features/raid1c34", "0\n");
    let single = "sys/fs/btrfs/0abb23a9-919c-4f63-b64b-fbd8e4e7a7e5";
    t.attributes(
        single,
        &[
            ("label", "fixture"),
            ("clone_alignment", "4096"),
            ("nodesize", "16384"),
            ("quota_override", "0"),
            ("sectorsize", "4096"),
        ],
    );
    t.attributes(
        &format!("{single}/features"),
        &[("extended_iref", "0"), ("no_holes", "0")],
    );
    let sda2 = "sys/devices/pci0000:00/0000:00:1f.2/ata1/host0/target0:0:0/0:0:0:0/block/sda/sda2";
    t.attributes(sda2, &[("size", "41943040")]);
    t.link(
        &format!("{single}/devices/sda2"),
        &format!("../../../../{}", &sda2[4..]),
    );
    t.attributes(
        &format!("{single}/allocation"),
        &[("global_rsv_reserved", "0"), ("global_rsv_size", "16777216")],
    );
    for (group, mode, total, used, reserved) in [
        ("data", "single", "8589934592", "6442450944", "0"),
        ("metadata", "dup", "1073741824", "268435456", "65536"),
        ("system", "dup", "8388608", "16384", "0"),
    ] {
        let dir = format!("{single}/allocation/{group}");
        t.attributes(
            &dir,
            &[
                ("bytes_may_use", "0"),
                ("bytes_pinned", "0"),
                ("bytes_readonly", "0"),
                ("bytes_reserved", reserved),
                ("bytes_used", used),
                ("disk_total", total),
                ("disk_used", used),
                ("flags", "1"),
                ("total_bytes", total),
                ("total_bytes_pinned", "0"),
            ],
        );
        t.attributes(
            &format!("{dir}/{mode}"),
            &[("total_bytes", total), ("used_bytes", used)],
        );
    }
    // Three devices in RAID5 (data) and RAID1 (metadata, system), with a separate metadata UUID.
    let raid = "sys/fs/btrfs/7f0c3e1e-2f68-4b9a-a0a2-6b3d1bfe4c10";
    t.attributes(
        raid,
        &[
            ("label", ""),
            ("metadata_uuid", "c2dd4b0b-63f6-4bb6-8a8f-8d6f1a6b2b0e"),
            ("nodesize", "16384"),
            ("sectorsize", "4096"),
        ],
    );
    t.attributes(&format!("{raid}/features"), &[("raid56", "0")]);
    for disk in ["vdb", "vdc", "vdd"] {
        let dir = format!("sys/devices/virtual/block/{disk}");
        t.attributes(&dir, &[("size", "209715200")]);
        t.link(
            &format!("{raid}/devices/{disk}"),
            &format!("../../../../devices/virtual/block/{disk}"),
        );
    }
    t.attributes(&format!("{raid}/allocation"), &[("global_rsv_size", "5242880")]);
    for (group, mode, total, used) in [
        ("data", "raid5", "21474836480", "1073741824"),
        ("metadata", "raid1", "2147483648", "1048576"),
        ("system", "raid1", "33554432", "16384"),
    ] {
        let dir = format!("{raid}/allocation/{group}");
        t.attributes(&dir, &[("bytes_reserved", "0"), ("total_bytes", total)]);
        t.attributes(
            &format!("{dir}/{mode}"),
            &[("total_bytes", total), ("used_bytes", used)],
        );
    }
    // Mounted on a directory of the fixture's root that is not a btrfs subvolume root, so the
    // ioctls cannot be used and the devices come from sysfs.
    std::fs::create_dir_all(t.rootfs().join("srv/data")).unwrap();
    t.file(
        "proc/1/mounts",
        &format!(
            "/dev/sda2 {}/srv/data btrfs rw,relatime,ssd,space_cache=v2,subvolid=5,subvol=/ 0 0\n\
             tmpfs /run tmpfs rw,nosuid,nodev,size=1635024k,mode=755 0 0\n",
            t.rootfs().display()
        ),
    );
}

fn infiniband(t: &Tree) {
    // ABI/stable/sysfs-class-infiniband. A ConnectX-5 with one active EDR port and no
    // counters_ext; a ConnectX-3 with extended counters, a port that is down and a counter that
    // its firmware does not provide.
    let mlx5 = "sys/class/infiniband/mlx5_0";
    t.attributes(
        mlx5,
        &[
            ("board_id", "MT_0000000010"),
            ("fw_ver", "16.35.2000"),
            ("hca_type", "MT4119"),
        ],
    );
    t.attributes(
        &format!("{mlx5}/ports/1"),
        &[
            ("state", "4: ACTIVE"),
            ("phys_state", "5: LinkUp"),
            ("rate", "100 Gb/sec (4X EDR)"),
        ],
    );
    t.attributes(
        &format!("{mlx5}/ports/1/counters"),
        &[
            ("excessive_buffer_overrun_errors", "0"),
            ("link_downed", "1"),
            ("link_error_recovery", "0"),
            ("local_link_integrity_errors", "0"),
            ("multicast_rcv_packets", "2094"),
            ("multicast_xmit_packets", "0"),
            ("port_rcv_constraint_errors", "0"),
            ("port_rcv_data", "2221223609"),
            ("port_rcv_errors", "0"),
            ("port_rcv_packets", "5791934"),
            ("port_rcv_remote_physical_errors", "0"),
            ("port_rcv_switch_relay_errors", "0"),
            ("port_xmit_constraint_errors", "0"),
            ("port_xmit_data", "26540356890"),
            ("port_xmit_discards", "0"),
            ("port_xmit_packets", "85734114"),
            ("port_xmit_wait", "3599"),
            ("symbol_error", "0"),
            ("unicast_rcv_packets", "5789840"),
            ("unicast_xmit_packets", "85734114"),
            ("VL15_dropped", "0"),
        ],
    );
    let mlx4 = "sys/class/infiniband/mlx4_0";
    t.attributes(mlx4, &[("board_id", "SM_1141000001000"), ("fw_ver", "2.42.5000")]);
    t.attributes(
        &format!("{mlx4}/ports/1"),
        &[
            ("state", "4: ACTIVE"),
            ("phys_state", "5: LinkUp"),
            ("rate", "56 Gb/sec (4X FDR)"),
        ],
    );
    t.attributes(
        &format!("{mlx4}/ports/1/counters"),
        &[
            ("link_downed", "0"),
            ("port_rcv_data", "0x10"),
            ("port_rcv_discards", "N/A (no PMA)"),
            ("port_xmit_data", "1024"),
            ("VL15_dropped", "3"),
        ],
    );
    t.attributes(
        &format!("{mlx4}/ports/1/counters_ext"),
        &[
            ("port_multicast_rcv_packets", "0"),
            ("port_multicast_xmit_packets", "0"),
            ("port_rcv_data_64", "4611686018427387904"),
            ("port_rcv_packets_64", "738"),
            ("port_unicast_rcv_packets", "738"),
            ("port_unicast_xmit_packets", "745"),
            ("port_xmit_data_64", "28184"),
            ("port_xmit_packets_64", "745"),
        ],
    );
    t.attributes(
        &format!("{mlx4}/ports/2"),
        &[
            ("state", "1: DOWN"),
            ("phys_state", "3: Disabled"),
            ("rate", "2.5 Gb/sec (1X SDR)"),
        ],
    );
    t.attributes(&format!("{mlx4}/ports/2/counters"), &[("link_downed", "2")]);
}

fn xfs(t: &Tree) {
    // Documentation/admin-guide/xfs.rst, "sysfs": the statistics of every XFS filesystem
    // together in /sys/fs/xfs/stats, then each one's own under /sys/fs/xfs/<device>/stats.
    // A recent kernel's groups (more than node_exporter knows), then an older one's with 7
    // vnode counters and 8 quota counters.
    let recent = "extent_alloc 4260849 125170297 4618726 131131897\n\
                  abt 29491162 337391304 11257328 11133039\n\
                  blk_map 381213360 115456141 10903633 69612322 7448401 507765827 0\n\
                  bmbt 771328 986400 145 167\n\
                  dir 21253907 6921870 6198222 1218\n\
                  trans 120 2567483 0\n\
                  ig 17754368 2019571 102 15734797 0 15672217 3962470\n\
                  log 19431 2149489 0 28108 26830\n\
                  push_ail 2682613 0 233466522 3497393 0 2114 102 2305 0 15212\n\
                  xstrat 6812 0\n\
                  rw 93151937 27225452\n\
                  attr 4670 46 0 0\n\
                  icluster 160063 59043 295441\n\
                  vnodes 92447 97 1 0 6 15734870 15734870 0\n\
                  buf 2584164 0 0 0 54 254 0 0 0\n\
                  abtb2 184 264 27 35 0 0 0 0 0 0 0 0 0 0 2\n\
                  abtc2 345 511 63 57 0 0 0 0 0 0 0 0 0 0 8\n\
                  bmbt2 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n\
                  ibt2 3 3 0 0 0 0 0 0 0 0 0 0 0 0 0\n\
                  fibt2 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n\
                  rmapbt 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n\
                  refcntbt 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n\
                  qm 0 0 0 0 0 0 0 0 0\n\
                  xpc 399724544 92823103 86219234\n\
                  defer_relog 0\n\
                  debug 0\n";
    let older = "extent_alloc 1 2 3 4\nabt 5 6 7 8\nblk_map 9 10 11 12 13 14 15\nbmbt 16 17 18 19\n\
                 dir 20 21 22 23\ntrans 24 25 26\nig 27 28 29 30 31 32 33\nlog 34 35 36 37 38\n\
                 push_ail 39 40 41 42 43 44 45 46 47 48\nxstrat 49 50\nrw 51 52\nattr 53 54 55 56\n\
                 icluster 57 58 59\nvnodes 60 61 62 63 64 65 66\nbuf 67 68 69 70 71 72 73 74 75\n\
                 qm 0 0 0 0 0 0 0 0\nxpc 4294967296 0 0\ndebug 0\n";
    t.file("sys/fs/xfs/stats/stats", recent);
    t.file("sys/fs/xfs/sda1/stats/stats", recent);
    t.file("sys/fs/xfs/dm-3/stats/stats", older);
    t.file("sys/fs/xfs/dm-3/error/fail_at_unmount", "1\n");
}

fn zfs(t: &Tree) {
    // OpenZFS's kstats: a header line (id, type, flags, count, size, creation and snapshot
    // times), the `name type data` line, then one statistic per line (type 4 is a 64-bit
    // unsigned number, 7 a string). Dashes in names become underscores in metric names.
    let kstat = |name: &str, rows: &[(&str, &str, &str)]| {
        let mut text = String::from(
            "6 1 0x01 91 4368 5266997922 97951829710566\nname                            type data\n",
        );
        for (key, kind, value) in rows {
            text.push_str(&format!("{key:<32}{kind:<5}{value}\n"));
        }
        t.file(&format!("proc/spl/kstat/zfs/{name}"), &text);
    };
    kstat(
        "arcstats",
        &[
            ("hits", "4", "8772612"),
            ("misses", "4", "604635"),
            ("demand_data_hits", "4", "7221032"),
            ("c", "4", "1073741824"),
            ("c_min", "4", "33554432"),
            ("size", "4", "1004269976"),
            ("arc_meta_used", "4", "308575888"),
            ("memory_throttle_count", "4", "0"),
            ("arc_need_free", "3", "0"),
        ],
    );
    kstat(
        "fm",
        &[
            ("erpt-dropped", "4", "18"),
            ("erpt-set-failed", "4", "0"),
            ("fmri-set-failed", "4", "0"),
            ("payload-set-failed", "4", "0"),
        ],
    );
    kstat(
        "zil",
        &[
            ("zil_commit_count", "4", "10"),
            ("zil_commit_writer_count", "4", "0"),
            ("zil_itx_count", "4", "0"),
        ],
    );
    kstat("zfetchstats", &[("hits", "4", "7067992"), ("misses", "4", "11")]);
    kstat(
        "dmu_tx",
        &[("dmu_tx_assigned", "4", "3532844"), ("dmu_tx_error", "4", "0")],
    );
    kstat(
        "vdev_mirror_stats",
        &[("rotating_linear", "4", "0"), ("non_rotating_seek", "4", "12")],
    );
    // A file node_exporter does not read.
    kstat("dmu_tx_assign", &[("1 ns", "4", "0")]);
    for (pool, state, reads) in [("pool1", "ONLINE\n", "22"), ("pool2", "DEGRADED\n", "1")] {
        t.file(
            &format!("proc/spl/kstat/zfs/{pool}/io"),
            &format!(
                "12 3 0x00 1 80 2225326830828 32953476980628\n\
                 nread    nwritten reads    writes   wtime    wlentime wupdate  rtime    rlentime rupdate  wcnt     rcnt\n\
                 1884160  3206144  {reads}       132      7155162  104112268 25164379  10638345 63226340 2523 0 0\n"
            ),
        );
        t.file(&format!("proc/spl/kstat/zfs/{pool}/state"), state);
    }
    for (objset, dataset, writes) in [
        ("objset-0x36", "pool1", "0"),
        ("objset-0x85", "pool1/data", "1217"),
    ] {
        t.file(
            &format!("proc/spl/kstat/zfs/pool1/{objset}"),
            &format!(
                "24 1 0x01 7 2160 5214787391 74985931356512\n\
                 name                            type data\n\
                 dataset_name                    7    {dataset}\n\
                 writes                          4    {writes}\n\
                 nwritten                        4    41521152\n\
                 reads                           4    33\n\
                 nread                           4    1265\n\
                 nunlinks                        4    2\n\
                 nunlinked                       4    2\n"
            ),
        );
    }
    t.file(
        "proc/spl/kstat/zfs/pool1/txgs",
        "txg      birth            state ndirty\n",
    );
}
