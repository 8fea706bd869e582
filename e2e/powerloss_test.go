package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/api/client"
)

// disk is an ext4 filesystem on a loop device whose backing file can be
// copied as a power cut would leave the device: what the kernel wrote to the
// device is in the copy, what was still in the page cache is not. ext4 is
// mounted with commit=600, so nothing reaches the device but what a process
// syncs (the test lasts seconds, well below the kernel's 30 s writeback).
type disk struct {
	t        *testing.T
	dir      string // holds the images
	img, mnt string
	loops    []string
	mounts   []string
}

// newDisk makes and mounts a fresh filesystem, or skips the test, loudly,
// where loop devices cannot be used (not root, no losetup or mkfs.ext4).
func newDisk(t *testing.T) *disk {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("SKIPPED: the power-loss test needs root (loop devices and mount); CI runs as root")
	}
	for _, tool := range []string{"losetup", "mkfs.ext4", "mount", "umount"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("SKIPPED: the power-loss test needs %s", tool)
		}
	}
	d := &disk{t: t, dir: t.TempDir()}
	t.Cleanup(d.release)
	d.img = filepath.Join(d.dir, "disk.img")
	d.run("truncate", "-s", "512M", d.img)
	loop := d.attach(d.img)
	d.run("mkfs.ext4", "-q", "-F", loop)
	d.mnt = d.mount(loop, "mnt")
	d.run("sync")
	return d
}

func (d *disk) run(name string, args ...string) string {
	d.t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		d.t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

func (d *disk) attach(img string) string {
	d.t.Helper()
	loop := d.run("losetup", "--find", "--show", img)
	d.loops = append(d.loops, loop)
	return loop
}

func (d *disk) mount(loop, name string) string {
	d.t.Helper()
	mnt := filepath.Join(d.dir, name)
	os.MkdirAll(mnt, 0o755)
	d.run("mount", "-o", "commit=600", loop, mnt)
	d.mounts = append(d.mounts, mnt)
	return mnt
}

// powerCut copies the device as the power cut leaves it and mounts the copy
// (ext4 replays its journal): only what was synced is there.
func (d *disk) powerCut() string {
	d.t.Helper()
	crash := filepath.Join(d.dir, "crash.img")
	d.run("cp", "--sparse=always", d.img, crash)
	return d.mount(d.attach(crash), "after")
}

func (d *disk) release() {
	for i := len(d.mounts) - 1; i >= 0; i-- {
		exec.Command("umount", "-l", d.mounts[i]).Run()
	}
	for _, l := range d.loops {
		exec.Command("losetup", "-d", l).Run()
	}
}

// TestPowerLoss runs an engine whose data dir is on a filesystem that loses
// everything not synced to disk, under load, cuts the power (SIGKILL, then a
// copy of the device without the page cache), and restarts on the copy.
// Under --sync always every run acknowledged as completed is there, with
// every step; under --sync interval acknowledged runs are lost, which shows
// that the simulation drops what was not synced.
func TestPowerLoss(t *testing.T) {
	for _, tt := range []struct {
		sync     string
		wantLoss bool
	}{
		{"always", false},
		{"interval", true},
	} {
		t.Run(tt.sync, func(t *testing.T) {
			d := newDisk(t)
			eng := startEngine(t, filepath.Join(d.mnt, "data"), "--sync", tt.sync)
			var after string
			acked := loadUntil(t, eng.url, 3*time.Second, func() { // the power cut, runs in flight
				eng.cmd.Process.Kill()
				eng.wait()
				after = d.powerCut()
			})
			// Restart on the copy, in the same place and with the same
			// name, so that it is the same node coming back.
			eng2 := startEngine(t, filepath.Join(after, "data"), "--sync", tt.sync)
			c := client.New(eng2.url)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			lost := 0
			for id, steps := range acked {
				d, err := c.Get(ctx, id)
				if err != nil || d.Status != api.StatusCompleted || len(d.Steps) != steps {
					lost++
					if !tt.wantLoss && lost <= 3 {
						t.Errorf("run %s, acknowledged as completed with %d steps: after the power cut %v %+v", id, steps, err, d)
					}
				}
			}
			triggered := 0
			for _, steps := range acked {
				if steps == 3 {
					triggered++
				}
			}
			t.Logf("--sync %s: %d runs acknowledged before the power cut (%d triggered), %d lost", tt.sync, len(acked), triggered, lost)
			if triggered == 0 {
				t.Fatal("no triggered run completed before the power cut")
			}
			if len(acked) == 0 {
				t.Fatal("no run completed before the power cut")
			}
			if tt.wantLoss && lost == 0 {
				t.Fatal("under --sync interval no acknowledged run was lost: the simulation does not drop unsynced writes")
			}
		})
	}
}

// loadUntil runs scripts from 8 clients, calls cut once d has passed while
// they go on, and returns the runs acknowledged as completed before the cut,
// with their step counts. Half the clients start runs of 4 steps and wait
// for them; the others trigger a deployed script of 3 side values
// synchronously, whose runs are journaled once, at their end (output commit).
func loadUntil(t *testing.T, url string, d time.Duration, cut func()) map[string]int {
	t.Helper()
	c := client.New(url)
	src := "def main(input):\n    kv.put('k%d' % input, str(time.now()))\n    return [uuid(), rand.int(10)]\n"
	ctx0, cancel0 := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel0()
	if _, err := c.Deploy(ctx0, api.DeployRequest{Script: api.Script{Name: "side", Main: "side.star",
		Files: map[string]string{"side.star": "def main(input):\n    return [str(time.now()), uuid(), rand.int(10)]\n"}}}); err != nil {
		t.Fatal(err)
	}
	trigger := func(ctx context.Context) (string, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url+"/v1/run/side", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return "", err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return "", fmt.Errorf("trigger: status %d", resp.StatusCode)
		}
		return resp.Header.Get(api.RunIDHeader), nil
	}
	var mu sync.Mutex
	acked := map[string]int{}
	cutting := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				var r *api.Run
				var err error
				steps := 4 // time.now, kv.put, uuid, rand.int
				if w%2 == 1 {
					r, steps = &api.Run{}, 3
					r.ID, err = trigger(ctx)
				} else if r, err = c.Start(ctx, api.StartRequest{Script: api.Script{Name: "pl", Main: "pl.star", Files: map[string]string{"pl.star": src}},
					Input: json.RawMessage(fmt.Sprint(w*100000 + i))}); err == nil {
					var end *api.Run
					if end, err = c.Wait(ctx, r.ID); err == nil && end.Status != api.StatusCompleted {
						err = fmt.Errorf("run %s %s: %+v", r.ID, end.Status, end.Error)
					}
				}
				cancel()
				select {
				case <-cutting: // the answer may have come after the cut
					return
				default:
				}
				if err != nil {
					t.Errorf("run: %v", err)
					return
				}
				mu.Lock()
				acked[r.ID] = steps
				mu.Unlock()
			}
		}()
	}
	time.Sleep(d) // the load's length: the workers run meanwhile
	mu.Lock()
	close(cutting) // answers from now on may come after the cut
	mu.Unlock()
	cut()
	wg.Wait()
	return acked
}
