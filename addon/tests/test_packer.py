"""The packer's decisions, without Blender: where each file goes in the zip,
what a .blend must store to reach it there, and what is refused.

Run from the addon folder: python3 -m unittest discover -s tests
(the Go test TestPythonUnitTests runs it).
"""

import ntpath
import os
import posixpath
import shutil
import tempfile
import unittest
import zipfile
from types import SimpleNamespace

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
            # /run's older name, a folder of its own on some systems.
            "/var/run/secrets/kubernetes.io/serviceaccount/token",
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

    def test_a_file_is_judged_where_its_links_lead(self):
        # Each path with where it really leads (os.path.realpath), judged
        # against where the project folder really is.
        layout = Layout("/home/ann/film/sh010.blend", "/home/ann/film", posixpath)
        refused = [
            # /var/lock is a link to /run/lock, /etc/mtab one to
            # /proc/self/mounts.
            ("/var/lock/lvm/P_global", "/run/lock/lvm/P_global", "system file"),
            ("/etc/mtab", "/proc/4242/mounts", "system file"),
            # A folder beside the project that links to a hidden one.
            ("/home/ann/keys/id_ed25519", "/home/ann/.ssh/id_ed25519", "hidden"),
            # A link in the project leads out of it all the same.
            ("/home/ann/film/tex/wood.png", "/home/ann/.ssh/id_ed25519", "hidden"),
            ("/home/ann/film/tex/env.png", "/proc/4242/environ", "system file"),
            ("/home/ann/film/.hidden/wood.png", "/home/ann/.aws/credentials", "hidden"),
        ]
        for path, real, why in refused:
            with self.subTest(path=path):
                reason = layout.refusal(path, real)
                self.assertIsNotNone(reason)
                # The report says the file is a link, to what, and where.
                self.assertIn("it is a link to a " + why, reason)
                self.assertIn("(%s)" % real, reason)
        allowed = [
            # Links to ordinary files, from the project or beside it.
            ("/home/ann/film/tex/wood.png", "/mnt/library/wood.png"),
            ("/home/ann/textures/wood.png", "/mnt/library/wood.png"),
            # A link within the project, even to a hidden folder of it.
            ("/home/ann/film/tex/wood.png", "/home/ann/film/.versions/wood_v3.png"),
        ]
        for path, real in allowed:
            with self.subTest(path=path):
                self.assertIsNone(layout.refusal(path, real))

    def test_a_project_folder_reached_through_a_link_keeps_its_files(self):
        # ~/film is a link to ~/.sync/film: the project's files really are
        # in a hidden folder, and are still the project's; a file elsewhere
        # in that hidden folder is not.
        layout = Layout("/home/ann/film/sh010.blend", "/home/ann/film", posixpath,
                        real_root="/home/ann/.sync/film")
        self.assertIsNone(layout.refusal("/home/ann/film/tex/wood.png", "/home/ann/.sync/film/tex/wood.png"))
        self.assertIn("hidden", layout.refusal("/home/ann/film/tex/notes.png", "/home/ann/.sync/notes.png"))

    def test_windows_appdata(self):
        # A .blend downloaded into Downloads\shot reaches AppData as
        # //../../AppData/…; Windows hides AppData with an attribute, not a
        # dot, so its name is known.
        layout = Layout(r"C:\Users\ann\Downloads\shot\sh010.blend", r"C:\Users\ann\Downloads\shot", ntpath)
        refused = [
            r"C:\Users\ann\AppData\Roaming\Mozilla\Firefox\Profiles\x1y2.default\logins.json",
            r"C:\Users\ann\AppData\Local\Google\Chrome\User Data\Default\Login Data",
            r"c:\users\ann\appdata\local\tex.png",
            r"C:\Users\ann\.ssh\id_ed25519",
        ]
        for path in refused:
            with self.subTest(path=path):
                self.assertIsNotNone(layout.refusal(path))
        self.assertIn("AppData", layout.refusal(r"C:\Users\ann\Downloads\tex.png", r"C:\Users\ann\AppData\Local\tex.png"))
        # Seen from WSL, a user's AppData is as much a secret.
        wsl = Layout("/home/ann/film/sh010.blend", "/home/ann/film", posixpath)
        self.assertIsNotNone(wsl.refusal("/mnt/c/Users/ann/AppData/Roaming/gh/hosts.yml"))
        self.assertIsNone(layout.refusal(r"D:\textures\wood.png"))

    def test_windows_attributes(self):
        # What Windows' attributes mark, as file_marks reads them.
        marked = {
            r"C:\ProgramData": {"hidden"},
            r"C:\Windows\Fonts": {"system"},
            r"D:\textures\pagefile.png": {"system"},
            r"C:\Users\ann\film\old": {"hidden"},
        }

        def marks(path):
            return marked.get(path, set())

        layout = Layout(r"C:\Users\ann\film\sh010.blend", r"C:\Users\ann\film", ntpath)
        cases = [
            (r"C:\ProgramData\ssh\ssh_host_ed25519_key", None, "hides (C:\\ProgramData)"),
            (r"D:\textures\pagefile.png", None, "system file"),
            # A link in the project to a folder Windows hides.
            (r"C:\Users\ann\film\tex\key.png", r"C:\ProgramData\ssh\ssh_host_ed25519_key", "link to a file Windows hides"),
        ]
        for path, real, want in cases:
            with self.subTest(path=path):
                self.assertIn(want, layout.refusal(path, real, marks) or "")
        allowed = [
            # A folder's system attribute is Explorer's: it reads the
            # folder's desktop.ini. Fonts are fonts.
            r"C:\Windows\Fonts\arial.ttf",
            r"D:\textures\wood.png",
            # The project's own hidden folder is the artist's choice.
            r"C:\Users\ann\film\old\wood.png",
        ]
        for path in allowed:
            with self.subTest(path=path):
                self.assertIsNone(layout.refusal(path, path, marks))

    def test_file_marks_reads_windows_attributes(self):
        def stat_with(attributes):
            return lambda path: SimpleNamespace(st_file_attributes=attributes)

        hidden, system, directory = 0x2, 0x4, 0x10
        self.assertEqual(packer.file_marks("x", stat_with(hidden | directory)), {"hidden"})
        self.assertEqual(packer.file_marks("x", stat_with(hidden | system)), {"hidden", "system"})
        self.assertEqual(packer.file_marks("x", stat_with(directory)), set())
        # Elsewhere stat() has no attributes; a path that cannot be read
        # has none either.
        self.assertEqual(packer.file_marks("x", lambda path: SimpleNamespace()), set())

        def gone(path):
            raise FileNotFoundError(path)
        self.assertEqual(packer.file_marks("x", gone), set())


class LinksTest(unittest.TestCase):
    """Packer.usable on real links, without Blender."""

    def test_links_to_secrets_are_refused_and_others_packed(self):
        with tempfile.TemporaryDirectory() as d:
            d = os.path.realpath(d)
            project = os.path.join(d, "project")
            ssh = os.path.join(d, ".ssh")
            for folder in (os.path.join(project, "tex"), ssh, os.path.join(d, "textures")):
                os.makedirs(folder)
            for name in ("project/sh010.blend", ".ssh/id_ed25519", "textures/wood.png"):
                open(os.path.join(d, name), "w").close()
            links = {
                # In the project: to a secret, to the environment, to a texture.
                "project/tex/key.png": ssh + "/id_ed25519",
                "project/tex/env.png": "/proc/self/environ",
                "project/tex/wood.png": d + "/textures/wood.png",
                # Beside it: a plain folder that is a link to a hidden one.
                "keys": ssh,
            }
            for name, target in links.items():
                os.symlink(target, os.path.join(d, name))
            p = packer.Packer(None, {"blend": os.path.join(project, "sh010.blend")})
            try:
                ref = packer.Ref("image", "tex", "//tex/x.png", None)
                usable = {name: p.usable(ref, "sh010.blend", os.path.join(d, name))
                          for name in ("project/tex/key.png", "project/tex/env.png",
                                       "project/tex/wood.png", "keys/id_ed25519")}
            finally:
                shutil.rmtree(p.stage)
            self.assertEqual(usable, {"project/tex/key.png": False, "project/tex/env.png": False,
                                      "project/tex/wood.png": True, "keys/id_ed25519": False})
            reasons = {os.path.relpath(r["path"], d): r["reason"] for r in p.refused}
            self.assertIn("link to a hidden file", reasons["project/tex/key.png"])
            self.assertIn("link to a system file (/proc/", reasons["project/tex/env.png"])
            self.assertIn("(%s/id_ed25519)" % ssh, reasons["keys/id_ed25519"])


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
