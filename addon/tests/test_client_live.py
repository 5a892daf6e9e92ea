"""The client and the add-on's submission flow against a real farm, outside
Blender. e2e/addon_test.go (TestAddonClientAgainstAFarm) starts
`renderfarm serve`, makes a shot with Blender and runs this with:

    RENDERFARM_TEST_SERVER   the farm's URL
    RENDERFARM_TEST_API_KEY  a key of a workspace there
    RENDERFARM_TEST_SHOT     a shot.blend made by internal/packer/packertest
    RENDERFARM_TEST_BLENDER  the Blender that packs it
    RENDERFARM_TEST_ADDON    the add-on's zip, whose client is run from it

Without them every test here is skipped.
"""

import json
import os
import subprocess
import sys
import tempfile
import unittest

from renderfarm import renderfarm_client as rfc
from renderfarm import submission

ENV = {name: os.environ.get("RENDERFARM_TEST_" + name, "") for name in ("SERVER", "API_KEY", "SHOT", "BLENDER", "ADDON")}


@unittest.skipUnless(all(ENV.values()), "needs a farm: run by e2e/addon_test.go")
class LiveTest(unittest.TestCase):
    def setUp(self):
        self.client = rfc.Client(ENV["SERVER"], ENV["API_KEY"], poll_interval=0.2)
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)

    def test_submission_packs_renders_and_downloads_under_blenders_names(self):
        shot = ENV["SHOT"]
        paths = {f: os.path.join(self.tmp.name, "render", "shot_%04d.png" % f) for f in (1, 2)}
        sub = submission.Submission(self.client, shot, ENV["BLENDER"], {"frameRanges": ["1-2"]},
                                    wait=True, download=True, frame_paths=paths, download_dir=self.tmp.name)
        seen = []
        original = sub.update

        def record(**changes):
            if "stage" in changes:
                seen.append(changes["stage"])
            original(**changes)
        sub.update = record
        sub.run()
        state = sub.snapshot()
        self.assertEqual(state["stage"], "done", state["error"])
        self.assertEqual(seen, ["packing", "uploading", "validating", "rendering", "downloading", "done"])
        self.assertEqual(len(state["pack"]["files"]), 6)
        self.assertEqual(state["pack"]["missing"], [])
        self.assertFalse([w for w in state["warnings"] if w.startswith("MISSING_FILE")], state["warnings"])
        self.assertEqual(sorted(state["downloaded"]), sorted(paths.values()))
        for path in paths.values():
            with open(path, "rb") as f:
                self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")
        job = self.client.job(state["job"]["id"])
        self.assertEqual(job["status"], "completed")
        libraries = job["analysis"]["libraries"]
        self.assertEqual([(lib["name"], lib["missing"]) for lib in libraries], [("prop.blend", False)])
        self.assertEqual(job["finalConfig"]["frameRanges"], ["1-2"])
        # What the add-on's list of jobs asks for: the counters alone.
        counts = self.client.progress(job["id"], frames=False)
        self.assertEqual((counts["framesTotal"], counts["framesCompleted"]), (2, 2))
        self.assertNotIn("frames", counts)
        self.assertEqual([f["frame"] for f in self.client.progress(job["id"])["frames"]], [1, 2])

    def test_errors_carry_the_farms_code_and_message(self):
        with self.assertRaises(rfc.APIError) as caught:
            rfc.Client(ENV["SERVER"], "RF-not-a-key").jobs()
        self.assertEqual((caught.exception.status, caught.exception.code), (401, "UNAUTHORIZED"))
        with self.assertRaises(rfc.APIError) as caught:
            self.client.job("7d3c1a52-0a8e-4a39-9c43-6f1f0b8e2f10")
        self.assertEqual((caught.exception.status, caught.exception.code), (404, "NOT_FOUND"))
        with self.assertRaises(rfc.APIError) as caught:
            self.client.create_job("no-such-slug")
        self.assertEqual(caught.exception.status, 400)
        self.assertTrue(caught.exception.message)

    def test_a_refused_render_request_names_the_field(self):
        upload = self.client.upload(ENV["SHOT"])
        job = self.client.create_job(upload)
        self.client.validate(job["id"])
        self.client.wait(job["id"], ("validated",))
        with self.assertRaises(rfc.APIError) as caught:
            self.client.render(job["id"], {"frameRanges": ["5-1"]})
        self.assertEqual((caught.exception.status, caught.exception.code), (400, "INVALID_RENDER_CONFIG"))
        self.assertIn("frameRanges", caught.exception.message)

    def test_render_fields_come_from_the_farms_openapi_document(self):
        fields = self.client.render_fields()
        self.assertIn("frameRanges", fields)
        self.assertIn("chunkSize", fields)
        # renderfarm's own fields, which the add-on shows only when the
        # farm's document has them.
        self.assertIn("priority", fields)
        self.assertIn("scoutFrames", fields)

    def test_command_line_from_the_addon_zip(self):
        env = dict(os.environ, PYTHONPATH=os.path.join(ENV["ADDON"], "renderfarm"), PYTHONDONTWRITEBYTECODE="1",
                   RENDERFARM_SERVER=ENV["SERVER"], RENDERFARM_API_KEY=ENV["API_KEY"])
        out = os.path.join(self.tmp.name, "frames")
        run = subprocess.run([sys.executable, "-m", "renderfarm_client", "submit", ENV["SHOT"], "--frames", "2",
                              "--download", out], env=env, capture_output=True, text=True, cwd=self.tmp.name, timeout=300)
        self.assertEqual(run.returncode, 0, run.stderr)
        job = json.loads(run.stdout.splitlines()[-1])
        self.assertEqual(job["status"], "completed")
        self.assertIn("job %s: validated" % job["id"], run.stderr)
        self.assertEqual(os.listdir(out), ["frame_0002.png"])
        run = subprocess.run([sys.executable, "-m", "renderfarm_client", "status", job["id"]], env=env,
                             capture_output=True, text=True, timeout=60)
        self.assertEqual((run.returncode, json.loads(run.stdout)["id"]), (0, job["id"]), run.stderr)
        run = subprocess.run([sys.executable, "-m", "renderfarm_client", "cancel", job["id"]], env=env,
                             capture_output=True, text=True, timeout=60)
        self.assertEqual(run.returncode, 1)
        self.assertIn("INVALID_STATE", run.stderr)


if __name__ == "__main__":
    unittest.main()
