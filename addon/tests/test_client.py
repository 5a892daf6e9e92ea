"""The client's pure parts: no farm, no Blender."""

import contextlib
import io
import unittest

from renderfarm import renderfarm_client as rfc
from renderfarm import submission


class ClientTest(unittest.TestCase):
    def test_frame_ranges(self):
        self.assertEqual(rfc.frame_ranges(1, 250), "1-250")
        self.assertEqual(rfc.frame_ranges(1, 250, 5), "1-250x5")
        self.assertEqual(rfc.frame_ranges(7, 7, 3), "7")

    def test_file_type(self):
        self.assertEqual(rfc.file_type("/p/Shot.BLEND"), "blend")
        self.assertEqual(rfc.file_type("shot.zip"), "zip")
        with self.assertRaises(ValueError):
            rfc.file_type("shot.blend1")

    def test_safe_name(self):
        self.assertEqual(rfc.safe_name("frame_0001.png"), "frame_0001.png")
        self.assertEqual(rfc.safe_name("../../etc/frame_0001.png"), "frame_0001.png")
        self.assertEqual(rfc.safe_name("a\\b\\frame.png"), "frame.png")
        for bad in ["", "..", ".bashrc", "x/.."]:
            with self.subTest(name=bad), self.assertRaises(ValueError):
                rfc.safe_name(bad)

    def test_client_needs_a_server_and_a_key(self):
        with self.assertRaisesRegex(ValueError, "RENDERFARM_SERVER"):
            rfc.Client("", "RF-x")
        with self.assertRaisesRegex(ValueError, "RENDERFARM_API_KEY"):
            rfc.Client("http://farm:8080", "")
        with self.assertRaisesRegex(ValueError, "not an http"):
            rfc.Client("farm:8080", "RF-x")
        with self.assertRaisesRegex(ValueError, "not an http"):
            rfc.Client("file:///etc", "RF-x")

    def test_presigned_urls_must_be_http(self):
        with self.assertRaises(rfc.APIError):
            rfc._check_url("file:///etc/passwd")
        self.assertEqual(rfc._check_url("https://bucket/x?sig=1"), "https://bucket/x?sig=1")

    def test_progress_line(self):
        job = {"id": "j", "status": "rendering"}
        progress = {"framesTotal": 10, "framesCompleted": 4, "framesFailed": 1, "etaSeconds": 125}
        self.assertEqual(rfc.progress_line(job, progress), "rendering: 4/10 frames, 1 failed, about 2 min 05 s left")
        self.assertEqual(rfc.progress_line({"id": "j", "status": "validating"}, None), "validating")

    def test_frames_by_status(self):
        progress = {"frames": [{"frame": f, "status": st} for f, st in [
            (1, "completed"), (2, "completed"), (3, "completed"), (5, "completed"),
            (4, "rendering"), (6, "queued"), (7, "queued"), (9, "failed")]]}
        self.assertEqual(rfc.frames_by_status(progress), "completed 1-3,5, rendering 4, queued 6-7, failed 9")
        self.assertEqual(rfc.frames_by_status(None), "")

    def test_frame_destination(self):
        paths = {1: "/shots/render/shot_0001.png", 2: "/shots/render/shot_0002.mp4"}
        self.assertEqual(submission.frame_destination({"frame": 1, "fileName": "frame_0001.png"}, paths, "/out"),
                         "/shots/render/shot_0001.png")
        # A scene writing a movie gets the farm's stills, under the movie's name.
        self.assertEqual(submission.frame_destination({"frame": 2, "fileName": "frame_0002.png"}, paths, "/out"),
                         "/shots/render/shot_0002.png")
        self.assertEqual(submission.frame_destination({"frame": 3, "fileName": "../frame_0003.png"}, paths, "/out"),
                         "/out/frame_0003.png")

    def test_frame_destination_keeps_the_views_of_a_frame_apart(self):
        # A stereo scene writing its views apart: the farm lists an image per
        # view, named by the view, which the right one must not overwrite.
        left = {"frame": 1, "fileName": "frame_0001_L.png", "view": "left"}
        right = {"frame": 1, "fileName": "frame_0001_R.png", "view": "right"}
        paths = {1: "/proj/render/shot_0001.png"}
        self.assertEqual(submission.frame_destination(left, paths, "/out"), "/out/frame_0001_L.png")
        self.assertEqual(submission.frame_destination(right, paths, "/out"), "/out/frame_0001_R.png")
        # With each view's path as Blender names it (ui.frame_paths), there.
        paths.update({(1, "left"): "/proj/render/shot_0001_L.png", (1, "right"): "/proj/render/shot_0001_R.png"})
        self.assertEqual(submission.frame_destination(left, paths, "/out"), "/proj/render/shot_0001_L.png")
        self.assertEqual(submission.frame_destination(right, paths, "/out"), "/proj/render/shot_0001_R.png")
        # Both views in one image, or one view: the frame's own path.
        stereo = {"frame": 1, "fileName": "frame_0001.png", "view": "stereo"}
        self.assertEqual(submission.frame_destination(stereo, paths, "/out"), "/proj/render/shot_0001.png")
        one = {"frame": 1, "fileName": "frame_0001.png", "view": None}
        self.assertEqual(submission.frame_destination(one, paths, "/out"), "/proj/render/shot_0001.png")

    def test_printable_escapes_what_drives_a_terminal(self):
        for text, want in [
            ("shot010", "shot010"),
            ("Sc\x1b]0;PWNED\x07\x1b[2J", "Sc\\x1b]0;PWNED\\a\\x1b[2J"),
            ("line\r\nforged", "line\\r\\nforged"),
            ("nul\x00 tab\t del\x7f", "nul\\x00 tab\\t del\\x7f"),
            ("csi \x9b2J", "csi \\u009b2J"),
            ("cam\u202eNOT \u2066x\u2069", "cam\\u202eNOT \\u2066x\\u2069"),
            ("Café 日本", "Café 日本"),
            ("C:\\Users\\ana", "C:\\Users\\ana"),
        ]:
            with self.subTest(text=text):
                self.assertEqual(rfc.printable(text), want)

    def test_command_line_prints_the_farms_text_escaped(self):
        job = {"id": "j1", "status": "validated", "analysis": {"warnings": [
            {"code": "MISSING_FILE", "message": "image refers to //tex\x1b[31m.png\nwarning FORGED: fine"}]}}
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            rfc._print_event("validated", job)
            rfc._print_progress({"id": "j1", "status": "rendering\x1b[2J"}, None)
        self.assertEqual(err.getvalue(), "job j1: validated\n"
                         "warning MISSING_FILE: image refers to //tex\\x1b[31m.png\\nwarning FORGED: fine\n"
                         "rendering\\x1b[2J\n")

    def test_wait_lists_the_frames_of_a_small_job_alone(self):
        # A job of 10 frames is followed with its frames, one of 3,000 and
        # any job the command line follows (frames=False) by its counters.
        class Recording(rfc.Client):
            def __init__(self, frames):
                super().__init__("http://farm:8080", "RF-x", poll_interval=0)
                self.frames, self.asked = frames, []

            def request(self, method, path, body=None):
                self.asked.append(path)
                if path.endswith("/progress") or "/progress?" in path:
                    return {"framesTotal": self.frames, "framesCompleted": 0}
                return {"data": {"id": "j1", "status": "completed", "finalConfig": {"frameCount": self.frames}}}

        for frames, listed, want in [(10, True, "/jobs/j1/progress"), (3000, True, "/jobs/j1/progress?frames=none"),
                                     (10, False, "/jobs/j1/progress?frames=none")]:
            with self.subTest(frames=frames, listed=listed):
                client = Recording(frames)
                client.wait("j1", on_progress=lambda job, progress: None, frames=listed)
                self.assertEqual(client.asked, ["/jobs/j1", want])

    def test_pack_summary(self):
        report = {"files": [{}, {}], "totalBytes": 3 << 20, "missing": [{}]}
        self.assertEqual(submission.pack_summary(report), "2 files, 3.0 MiB, 1 missing")
        self.assertTrue(submission.only_the_blend({"files": [{"zipPath": "a.blend", "rewritten": False}]}))
        self.assertFalse(submission.only_the_blend({"files": [{"zipPath": "a.blend", "rewritten": True}]}))

    def test_packer_env_drops_the_key(self):
        import os
        os.environ["RENDERFARM_API_KEY"] = "RF-secret"
        try:
            self.assertNotIn("RENDERFARM_API_KEY", submission.packer_env())
        finally:
            del os.environ["RENDERFARM_API_KEY"]


if __name__ == "__main__":
    unittest.main()
