"""Unit tests of the side-by-side harness's own logic: python3 -m unittest benches/test_harness.py"""

import os
import re
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import ksm_target  # noqa: E402
import side_by_side  # noqa: E402

SAMPLE_LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')


class KsmTargetTest(unittest.TestCase):
    def test_body_has_n_kube_series_with_five_to_eight_labels(self):
        body = ksm_target.Body(1000)
        text = body.render(body.started + 3).decode()
        kube, go, names = 0, 0, set()
        for line in text.splitlines():
            if line.startswith("#"):
                continue
            m = SAMPLE_LINE.match(line)
            self.assertIsNotNone(m, line)
            float(m.group(4))
            if m.group(1).startswith("kube_"):
                kube += 1
                labels = m.group(3).split('",')
                self.assertTrue(5 <= len(labels) <= 8, line)
                self.assertNotIn(line.rsplit(" ", 1)[0], names, "duplicate series")
                names.add(line.rsplit(" ", 1)[0])
            elif re.match(side_by_side.DROP_REGEX, m.group(1)):
                go += 1
        self.assertEqual(kube, 1000)
        self.assertEqual(kube + go + 1, body.series)

    def test_values_change_between_scrapes(self):
        body = ksm_target.Body(2000)
        self.assertNotEqual(body.render(body.started + 1), body.render(body.started + 2))


class HarnessTest(unittest.TestCase):
    def test_durations(self):
        self.assertEqual(side_by_side.parse_duration("1m30s"), 90)
        self.assertEqual(side_by_side.parse_duration("10m"), 600)
        with self.assertRaises(Exception):
            side_by_side.parse_duration("ten")
        self.assertEqual([side_by_side.fmt_duration(s) for s in (5, 60, 90)], ["5s", "1m", "1m30s"])

    def test_metric_sums_add_every_label_set(self):
        text = '# HELP x\nx_total{a="1"} 2\nx_total{a="2"} 3.5\ny 1e3\n'
        self.assertEqual(side_by_side.metric_sums(text), {"x_total": 5.5, "y": 1000.0})

    def test_checkpoint_counts_scrapes_served_before_the_moment(self):
        with tempfile.NamedTemporaryFile("w", suffix=".log", delete=False) as f:
            f.write("outpost 100.0\nvmagent 101.0\noutpost 115.0\noutpost 130.0\n")
        try:
            log = side_by_side.ScrapeLog(f.name)
            self.assertEqual(log.checkpoint("outpost", 120.0), (115.1, 2))
            self.assertEqual(log.checkpoint("vmagent", 99.0), (None, 0))
        finally:
            os.unlink(f.name)


if __name__ == "__main__":
    unittest.main()
