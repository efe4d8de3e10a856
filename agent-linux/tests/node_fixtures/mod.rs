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
pub const COLLECTORS: [&str; 16] = [
    "bonding",
    "cpufreq",
    "dmi",
    "edac",
    "fibrechannel",
    "hwmon",
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
