"""The packer's decisions, without Blender: where each file goes in the zip,
what a .blend must store to reach it there, and what is refused.

Run from the addon folder: python3 -m unittest discover -s tests
(the Go test TestPythonUnitTests runs it).
"""

import ntpath
import os
import posixpath
import tempfile
import unittest
import zipfile

from renderfarm import packer
from renderfarm.packer import Entries, Layout, PackError


class LayoutTest(unittest.TestCase):
    def test_zip_paths(self):
        layout = Layout("/home/ann/film/shots/sh010.blend", "/home/ann/film/shots", posixpath)
        cases = [
            # The .blend to render sits at the top of the zip.
            ("/home/ann/film/shots/sh010.blend", "sh010.blend"),
            # The project keeps its layout.
            ("/home/ann/film/shots/tex/wood.png", "tex/wood.png"),
            ("/home/ann/film/shots/./tex/../tex/wood.png", "tex/wood.png"),
            # Another .blend at the top would be a second one there.
            ("/home/ann/film/shots/sh010_lighting.blend", "_libraries/sh010_lighting.blend"),
            ("/home/ann/film/shots/lib/char.blend", "lib/char.blend"),
            # Outside the project: the whole path, under its root.
            ("/home/ann/film/assets/char.blend", "_outside/root/home/ann/film/assets/char.blend"),
            ("/mnt/library/hdri/sky.exr", "_outside/root/mnt/library/hdri/sky.exr"),
            # A folder that only starts like the project's is outside it.
            ("/home/ann/film/shots2/x.png", "_outside/root/home/ann/film/shots2/x.png"),
        ]
        for path, want in cases:
            with self.subTest(path=path):
                self.assertEqual(layout.zip_path(path), want)

    def test_project_root_above_the_blend(self):
        layout = Layout("/p/shots/sh010.blend", "/p", posixpath)
        self.assertEqual(layout.zip_path("/p/shots/sh010.blend"), "sh010.blend")
        self.assertEqual(layout.zip_path("/p/shots/seq/f_0001.png"), "shots/seq/f_0001.png")
        self.assertEqual(layout.zip_path("/p/assets/prop.blend"), "assets/prop.blend")
        self.assertEqual(layout.zip_path("/p/other.blend"), "_libraries/other.blend")

    def test_windows_paths(self):
        layout = Layout(r"C:\work\film\sh010.blend", r"C:\work\film", ntpath)
        cases = [
            (r"C:\work\film\tex\wood.png", "tex/wood.png"),
            (r"c:\WORK\film\tex\wood.png", "tex/wood.png"),  # Windows ignores case
            (r"D:\textures\wood.png", "_outside/D/textures/wood.png"),
            (r"C:\textures\wood.png", "_outside/C/textures/wood.png"),
            (r"\\server\share\lib\char.blend", "_outside/unc/server/share/lib/char.blend"),
        ]
        for path, want in cases:
            with self.subTest(path=path):
                self.assertEqual(layout.zip_path(path), want)

    def test_outside_paths_cannot_collide(self):
        # Different files never share a zip path, whatever their roots.
        posix = Layout("/p/a.blend", "/p", posixpath)
        win = Layout(r"C:\p\a.blend", r"C:\p", ntpath)
        names = {
            posix.zip_path("/C/x.png"),
            posix.zip_path("/unc/server/x.png"),
            win.zip_path(r"C:\x.png"),
            win.zip_path(r"\\server\share\x.png"),
            win.zip_path(r"\\C\share\x.png"),
        }
        self.assertEqual(len(names), 5, names)

    def test_refusals(self):
        layout = Layout("/home/ann/film/sh010.blend", "/home/ann/film", posixpath)
        refused = [
            "/home/ann/.ssh/id_ed25519",
            "/home/ann/.aws/credentials",
            "/home/ann/.config/blender/key.png",
            "/proc/self/environ",
            "/sys/class/net/eth0/address",
            "/dev/zero",
            "/run/secrets/token",
        ]
        for path in refused:
            with self.subTest(path=path):
                self.assertIsNotNone(layout.refusal(path))
        allowed = [
            "/home/ann/film/.hidden/inside-the-project.png",  # the artist's own choice
            "/home/ann/textures/wood.png",
            "/mnt/library/run/wood.png",
            "/procedural/wood.png",
        ]
        for path in allowed:
            with self.subTest(path=path):
                self.assertIsNone(layout.refusal(path))


class StoredPathTest(unittest.TestCase):
    def test_stored_paths(self):
        cases = [
            ("sh010.blend", "tex/wood.png", "//tex/wood.png"),
            ("sh010.blend", "_outside/root/mnt/sky.exr", "//_outside/root/mnt/sky.exr"),
            ("assets/prop.blend", "assets/tex/red.png", "//tex/red.png"),
            ("assets/props/prop.blend", "assets/tex/red.png", "//../tex/red.png"),
            ("_libraries/prop.blend", "_outside/root/t/red.png", "//../_outside/root/t/red.png"),
        ]
        for blend, target, want in cases:
            with self.subTest(blend=blend, target=target):
                self.assertEqual(packer.stored_path(blend, target), want)
        self.assertEqual(packer.stored_path("a.blend", "cache/fluid", trailing_slash=True), "//cache/fluid/")

    def test_same_stored(self):
        self.assertTrue(packer.same_stored("//tex\\wood.png", "//tex/wood.png"))
        self.assertTrue(packer.same_stored("//cache/", "//cache"))
        self.assertFalse(packer.same_stored("//../tex/wood.png", "//tex/wood.png"))
        self.assertFalse(packer.same_stored("/abs/tex/wood.png", "//tex/wood.png"))

    def test_entry_name_problems(self):
        self.assertIsNone(packer.entry_name_problem("_outside/root/home/ann/wood.png"))
        self.assertIn("control character", packer.entry_name_problem("tex/a\nb.png"))
        self.assertIn("backslash", packer.entry_name_problem("tex/a\\b.png"))
        self.assertIn("255", packer.entry_name_problem("tex/" + "a" * 256))
        self.assertIn("1024", packer.entry_name_problem("/".join(["d" * 200] * 6)))


class FilesTest(unittest.TestCase):
    def test_numbered_siblings(self):
        with tempfile.TemporaryDirectory() as d:
            for name in ["f_0001.png", "f_0002.png", "f_10000.png", "f_0001.exr", "g_0001.png", "f_.png"]:
                open(os.path.join(d, name), "w").close()
            got = [os.path.basename(p) for p in packer.numbered_siblings(os.path.join(d, "f_0001.png"))]
            self.assertEqual(got, ["f_0001.png", "f_0002.png", "f_10000.png"])
            self.assertEqual(packer.numbered_siblings(os.path.join(d, "nothing_0001.png")), [])
            self.assertEqual(packer.numbered_siblings(os.path.join(d, "missing-dir", "f_0001.png")), [])

    def test_udim_tiles(self):
        self.assertEqual(packer.udim_tile_path("/t/wood.<UDIM>.png", 1001), "/t/wood.1001.png")
        self.assertEqual(packer.udim_tile_path("/t/wood.<UDIM>.png", 1012), "/t/wood.1012.png")
        self.assertEqual(packer.udim_tile_path("/t/wood_<UVTILE>.png", 1012), "/t/wood_u2_v2.png")

    def test_files_below_skips_hidden_and_stops_over_the_limit(self):
        with tempfile.TemporaryDirectory() as d:
            os.makedirs(os.path.join(d, "a", ".git"))
            for name in ["a/1.bphys", "a/2.bphys", "a/.DS_Store", "a/.git/x", "b.bphys"]:
                open(os.path.join(d, name), "w").close()
            got = sorted(os.path.relpath(p, d) for p in packer.files_below(d, 10))
            self.assertEqual(got, ["a/1.bphys", "a/2.bphys", "b.bphys"])
            self.assertEqual(len(packer.files_below(d, 1)), 2)


class EntriesTest(unittest.TestCase):
    def test_the_same_file_twice_is_packed_once(self):
        e = Entries()
        e.add("tex/a.png", "/p/tex/a.png", 10, "image")
        e.add("tex/a.png", "/p/tex/a.png", 10, "image")
        self.assertEqual(e.order, ["tex/a.png"])
        self.assertEqual(e.total, 10)

    def test_two_files_on_one_name_is_an_error_naming_both(self):
        e = Entries()
        e.add("_libraries/lib.blend", "/p/_libraries/lib.blend", 10, "blend")
        with self.assertRaises(PackError) as caught:
            e.add("_libraries/lib.blend", "/p/lib.blend", 10, "blend")
        self.assertIn("/p/_libraries/lib.blend", str(caught.exception))
        self.assertIn("/p/lib.blend", str(caught.exception))

    def test_the_farms_limits(self):
        self.assertEqual(packer.MAX_FILES, 10000)
        self.assertEqual(packer.MAX_TOTAL_BYTES, 20 << 30)
        e = Entries(max_files=2, max_total_bytes=100)
        e.add("a", "/a", 50, "image")
        e.add("b", "/b", 50, "image")
        with self.assertRaises(PackError) as caught:
            e.add("c", "/c", 1, "image")
        self.assertIn("more than 2 files", str(caught.exception))
        e = Entries(max_files=10, max_total_bytes=100)
        e.add("a", "/a", 60, "image")
        with self.assertRaises(PackError) as caught:
            e.add("b", "/b", 41, "image")
        self.assertIn("more than 100 bytes", str(caught.exception))

    def test_write_zip_puts_the_blend_first_and_stores_compressed_formats(self):
        with tempfile.TemporaryDirectory() as d:
            for name in ["sh.blend", "a.png", "b.abc"]:
                with open(os.path.join(d, name), "wb") as f:
                    f.write(b"x" * 1000)
            e = Entries()
            e.add("tex/a.png", os.path.join(d, "a.png"), 1000, "image")
            e.add("cache/b.abc", os.path.join(d, "b.abc"), 1000, "cache")
            e.add("sh.blend", os.path.join(d, "sh.blend"), 1000, "blend")
            out = os.path.join(d, "out.zip")
            packer.write_zip(out, e, "sh.blend")
            with zipfile.ZipFile(out) as zf:
                infos = zf.infolist()
            self.assertEqual([i.filename for i in infos], ["sh.blend", "cache/b.abc", "tex/a.png"])
            methods = {i.filename: i.compress_type for i in infos}
            self.assertEqual(methods["tex/a.png"], zipfile.ZIP_STORED)
            self.assertEqual(methods["cache/b.abc"], zipfile.ZIP_DEFLATED)


if __name__ == "__main__":
    unittest.main()
