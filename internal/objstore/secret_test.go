package objstore_test

import (
	"bytes"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/renderfarm/renderfarm/internal/objstore"
)

func TestLoadOrCreateSecret(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state", "url-secret") // parent is created

	first, err := objstore.LoadOrCreateSecret(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(first) != 32 || bytes.Equal(first, make([]byte, 32)) {
		t.Fatalf("secret = %x, want 32 random bytes", first)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("secret file mode = %v, want 0600", perm)
	}
	again, err := objstore.LoadOrCreateSecret(path)
	if err != nil || !bytes.Equal(again, first) {
		t.Errorf("second load = %x, %v; want the same secret", again, err)
	}
	if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 1 {
		t.Errorf("the secret's folder holds %d entries, want only the secret", len(entries))
	}
}

// TestLoadOrCreateSecretRace starts several processes' worth of callers at
// once: they must all end up with the one secret that was written.
func TestLoadOrCreateSecretRace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "url-secret")
	secrets := make([][]byte, 16)
	var wg sync.WaitGroup
	for i := range secrets {
		wg.Go(func() {
			s, err := objstore.LoadOrCreateSecret(path)
			if err != nil {
				t.Errorf("LoadOrCreateSecret: %v", err)
			}
			secrets[i] = s
		})
	}
	wg.Wait()
	onDisk, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range secrets {
		if !bytes.Equal(s, onDisk) {
			t.Errorf("caller %d got %x, but the file holds %x", i, s, onDisk)
		}
	}
	if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 1 {
		t.Errorf("the secret's folder holds %d entries, want only the secret", len(entries))
	}
}

func TestLoadOrCreateSecretRefusesDamagedFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "url-secret")
	os.WriteFile(path, []byte("short"), 0o600)
	if _, err := objstore.LoadOrCreateSecret(path); err == nil {
		t.Error("a 5-byte secret file was accepted")
	}
	if b, _ := os.ReadFile(path); string(b) != "short" {
		t.Error("the damaged secret file was overwritten")
	}
}

// TestLoadOrCreateSecretTightensItsMode: a secret file that other users of
// the machine may read (an older version's, a restored backup) is made
// 0600 when it is loaded, and still read.
func TestLoadOrCreateSecretTightensItsMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "url-secret")
	secret := bytes.Repeat([]byte{7}, 32)
	if err := os.WriteFile(path, secret, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o644); err != nil { // whatever the umask
		t.Fatal(err)
	}
	got, err := objstore.LoadOrCreateSecret(path)
	if err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("LoadOrCreateSecret = %x, %v; want the stored secret", got, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("secret file mode after loading = %v, want 0600", perm)
	}
}
