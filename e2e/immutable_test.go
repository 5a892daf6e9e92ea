package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"image/png"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/renderfarm/renderfarm/client"
)

// A job's input cannot change once the job exists: the upload URL keeps
// its signature until it expires, but the job renders a copy of the file
// that no URL can write. These tests send a second file, of another
// colour, to the upload URL of a job and check which one Blender renders.

// coloredScenePy makes a scene whose every pixel is one colour: an empty
// world of that colour seen by a camera, rendered by Cycles in one sample.
const coloredScenePy = `
import sys
import bpy

args = sys.argv[sys.argv.index("--") + 1:]
r, g, b = (float(c) for c in args[0].split(","))
bpy.ops.wm.read_factory_settings(use_empty=True)
scene = bpy.context.scene
scene.render.engine = "CYCLES"
scene.cycles.samples = 1
scene.cycles.use_denoising = False
scene.render.resolution_x = 16
scene.render.resolution_y = 16
scene.render.resolution_percentage = 100
scene.frame_start = 1
scene.frame_end = 1
scene.view_settings.view_transform = "Standard"
scene.render.image_settings.file_format = "PNG"
world = bpy.data.worlds.new("World")
world.use_nodes = True
world.node_tree.nodes["Background"].inputs[0].default_value = (r, g, b, 1.0)
scene.world = world
camera = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
scene.collection.objects.link(camera)
scene.camera = camera
bpy.ops.wm.save_as_mainfile(filepath=args[1])
`

// coloredScene makes a .blend whose frames are all of colour rgb ("1,0,0"
// is red) with the Blender the tests run.
func coloredScene(t *testing.T, name, rgb string) string {
	t.Helper()
	dir := t.TempDir()
	script, out := filepath.Join(dir, "make.py"), filepath.Join(dir, name+".blend")
	writeFile(t, script, []byte(coloredScenePy))
	cmd := exec.Command("blender", "-b", "--factory-startup", "--python-exit-code", "1", "--python", script, "--", rgb, out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("making the %s scene: %v\n%s", name, err, b)
	}
	return out
}

func fileSHA256(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// putFile sends a file to a presigned upload URL, as anyone holding the
// URL could, and answers the status and the JSON error, if any.
func putFile(t *testing.T, uploadURL, path string) (int, apiErrorBody) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPut, uploadURL, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e apiErrorBody
	body, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(body, &e)
	return resp.StatusCode, e
}

type apiErrorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// uploadTo creates an upload and sends path to it, returning the ticket.
func uploadTo(ctx context.Context, t *testing.T, c *client.Client, path string) *client.UploadTicket {
	t.Helper()
	ticket, err := c.CreateUpload(ctx, "scene.blend", client.FileTypeBlend)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Upload(ctx, ticket.UploadURL, bytes.NewReader(b), int64(len(b)), nil); err != nil {
		t.Fatalf("upload: %v", err)
	}
	return ticket
}

// renderedColour renders frame 1 of a validated job and answers the colour
// of the middle of the frame.
func renderedColour(ctx context.Context, t *testing.T, c *client.Client, id string) (r, g, b uint32) {
	t.Helper()
	job := renderAndWait(ctx, t, c, id, client.RenderConfig{ColorManagementPreset: client.String("default"), FrameRanges: []string{"1"}})
	if job.Status != client.StatusCompleted {
		t.Fatalf("render ended %s: %+v", job.Status, job.FailedReason)
	}
	d, err := c.Downloads(ctx, id)
	if err != nil || len(d.FrameOutputs) != 1 {
		t.Fatalf("downloads = %+v, %v; want one frame", d, err)
	}
	path := filepath.Join(t.TempDir(), "frame.png")
	if _, err := c.DownloadFile(ctx, d.FrameOutputs[0].URL, path); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("the frame is not a PNG: %v", err)
	}
	mid := img.Bounds().Min.Add(img.Bounds().Size().Div(2))
	r, g, b, _ = img.At(mid.X, mid.Y).RGBA()
	return r >> 8, g >> 8, b >> 8
}

func isRed(r, g, b uint32) bool { return r > 200 && g < 50 && b < 50 }

// TestReuploadAfterValidationIsRefusedAndTheValidatedFileRenders sends a
// blue scene to the upload URL of a job made from a red one, once it is
// validated and while the URL is still valid: the local store refuses it
// with 409 UPLOAD_USED saying what to do instead, and the render is red,
// of the file whose SHA-256 the job shows.
func TestReuploadAfterValidationIsRefusedAndTheValidatedFileRenders(t *testing.T) {
	// Without warm sessions the render starts a Blender that opens the
	// job's input afresh, rather than one that kept the validated file
	// loaded: what it opens is what this test is about.
	f := startFarm(t, "--blender-keep-alive", "0")
	c := f.client("studio")
	ctx := testContext(t)
	red, blue := coloredScene(t, "red", "1,0,0"), coloredScene(t, "blue", "0,0,1")

	ticket := uploadTo(ctx, t, c, red)
	job, err := c.CreateJob(ctx, ticket.Slug)
	if err != nil {
		t.Fatal(err)
	}
	job = validate(ctx, t, c, job.ID)
	if job.Status != client.StatusValidated {
		t.Fatalf("validation ended %s: %+v", job.Status, job.FailedReason)
	}

	status, e := putFile(t, ticket.UploadURL, blue)
	if status != http.StatusConflict || e.Error.Code != "UPLOAD_USED" ||
		!strings.Contains(e.Error.Message, job.ID) || !strings.Contains(e.Error.Message, "POST /uploads") {
		t.Errorf("PUT of another file after validation = %d %+v, want 409 UPLOAD_USED naming the job and saying to request a new upload URL", status, e)
	}
	if left := filesUnder(t, filepath.Join(f.DataDir, "objects", "uploads", ticket.Slug)); left != 0 {
		t.Errorf("%d files stored under the used upload", left)
	}

	if r, g, b := renderedColour(ctx, t, c, job.ID); !isRed(r, g, b) {
		t.Errorf("the frame is (%d, %d, %d), want the validated scene's red", r, g, b)
	}
	job, err = c.GetJob(ctx, job.ID)
	if err != nil {
		t.Fatal(err)
	}
	if want := fileSHA256(t, red); job.SceneFile == nil || job.SceneFile.SHA256 != want {
		t.Errorf("the job shows sceneFile %+v, want the SHA-256 of the red scene, %s", job.SceneFile, want)
	}
}

// TestReuploadAfterDeleteIsRefused sends a file to the upload URL of a
// deleted job: it is refused with 409 UPLOAD_DELETED and nothing of it, or
// of the job, is stored again.
func TestReuploadAfterDeleteIsRefused(t *testing.T) {
	f := startFarm(t)
	c := f.client("studio")
	ctx := testContext(t)

	ticket := uploadTo(ctx, t, c, scene("cube.blend"))
	job, err := c.CreateJob(ctx, ticket.Slug)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Cancel(ctx, job.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteJob(ctx, job.ID); err != nil {
		t.Fatal(err)
	}
	jobFiles := filepath.Join(f.DataDir, "objects", "jobs", job.ID)
	uploadFiles := filepath.Join(f.DataDir, "objects", "uploads", ticket.Slug)
	waitFor(t, "the deleted job's files removed", func() bool { return filesUnder(t, jobFiles)+filesUnder(t, uploadFiles) == 0 })

	status, e := putFile(t, ticket.UploadURL, scene("cube.blend"))
	if status != http.StatusConflict || e.Error.Code != "UPLOAD_DELETED" || !strings.Contains(e.Error.Message, "deleted") {
		t.Errorf("PUT to a deleted job's upload = %d %+v, want 409 UPLOAD_DELETED", status, e)
	}
	if n := filesUnder(t, jobFiles) + filesUnder(t, uploadFiles); n != 0 {
		t.Errorf("%d files of the deleted job are stored again", n)
	}
	if _, err := c.CreateJob(ctx, ticket.Slug); !client.HasCode(err, "SLUG_ALREADY_USED") {
		t.Errorf("a second job from the deleted job's slug: %v, want SLUG_ALREADY_USED", err)
	}
}

// TestBucketReuploadAfterJobCreationChangesNothing: a bucket's presigned
// PUT cannot be revoked, so a second file sent to a job's upload URL is
// stored; the job still renders its own copy of the first file, and the
// sweep of stray uploads removes the second.
func TestBucketReuploadAfterJobCreationChangesNothing(t *testing.T) {
	d := newDistributed(t)
	// Retention just over the URL's life: the sweep runs every 5 s.
	api := d.api(t, "--workers", "1", "--upload-url-ttl", "20s", "--upload-retention", "21s")
	c := api.client("studio")
	ctx := testContext(t)
	red, blue := coloredScene(t, "red", "1,0,0"), coloredScene(t, "blue", "0,0,1")

	ticket := uploadTo(ctx, t, c, red)
	job, err := c.CreateJob(ctx, ticket.Slug)
	if err != nil {
		t.Fatal(err)
	}
	if status, e := putFile(t, ticket.UploadURL, blue); status != http.StatusOK {
		t.Fatalf("the bucket refused the second PUT (%d %+v); this test needs a URL that still works", status, e)
	}

	bucket, admin := bucketAdmin(t, d)
	slugPrefix := "uploads/" + ticket.Slug + "/"
	job = validate(ctx, t, c, job.ID)
	if job.Status != client.StatusValidated {
		t.Fatalf("validation ended %s: %+v", job.Status, job.FailedReason)
	}
	if want := fileSHA256(t, red); job.SceneFile == nil || job.SceneFile.SHA256 != want {
		t.Errorf("validation checked sceneFile %+v, want the red scene's SHA-256 %s", job.SceneFile, want)
	}
	if r, g, b := renderedColour(ctx, t, c, job.ID); !isRed(r, g, b) {
		t.Errorf("the frame is (%d, %d, %d), want the red of the file the job was made from", r, g, b)
	}

	waitFor(t, "the stray upload removed from the bucket", func() bool {
		return len(listBucket(ctx, t, admin, bucket, slugPrefix)) == 0
	})
	input := listBucket(ctx, t, admin, bucket, "jobs/"+job.ID+"/input/")
	if len(input) != 1 || input[0].Size != fileSize(t, red) {
		t.Errorf("the job's input in the bucket: %+v, want the red scene (%d bytes)", input, fileSize(t, red))
	}
}

// bucketAdmin is a client of the test's bucket that sees it as it is.
func bucketAdmin(t *testing.T, d *distributed) (string, *minio.Client) {
	t.Helper()
	u, err := url.Parse(d.storage)
	if err != nil {
		t.Fatal(err)
	}
	endpoint, err := url.Parse(u.Query().Get("endpoint"))
	if err != nil {
		t.Fatal(err)
	}
	admin, err := minio.New(endpoint.Host, &minio.Options{Creds: credentials.NewEnvAWS(), Secure: endpoint.Scheme == "https", Region: "us-east-1"})
	if err != nil {
		t.Fatal(err)
	}
	return u.Host, admin
}

func listBucket(ctx context.Context, t *testing.T, admin *minio.Client, bucket, prefix string) []minio.ObjectInfo {
	t.Helper()
	var out []minio.ObjectInfo
	for o := range admin.ListObjects(ctx, bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if o.Err != nil {
			t.Fatalf("list %s: %v", prefix, o.Err)
		}
		out = append(out, o)
	}
	return out
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}
