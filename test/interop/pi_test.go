//go:build integration

package interop

import (
	"debug/elf"
	"path/filepath"
	"testing"
	"time"
)

// TestPiBuildsRunUnderQEMU cross-builds casp3r for the Raspberry Pi (arm64
// and armv7, CGO_ENABLED=0) and runs init, serve, user add and a login with
// a ping under QEMU user emulation.
func TestPiBuildsRunUnderQEMU(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, goarch, goarm, qemu string
		machine                   elf.Machine
	}{
		{"arm64", "arm64", "", "qemu-aarch64-static", elf.EM_AARCH64},
		{"armv7", "arm", "7", "qemu-arm-static", elf.EM_ARM},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			bin := filepath.Join(t.TempDir(), "casp3r-"+tc.name)
			env := []string{"GOOS=linux", "GOARCH=" + tc.goarch}
			if tc.goarm != "" {
				env = append(env, "GOARM="+tc.goarm)
			}
			if err := goBuild(bin, env); err != nil {
				t.Fatal(err)
			}
			f, err := elf.Open(bin)
			if err != nil {
				t.Fatal(err)
			}
			if f.Machine != tc.machine {
				t.Errorf("%s is built for %v, want %v", bin, f.Machine, tc.machine)
			}
			f.Close()

			qemu := lookTool(t, tc.qemu, "Debian: apt-get install qemu-user-static")
			s := newServer(t, serverOptions{bin: bin, wrap: []string{qemu}, slow: true})
			s.start()
			const pw = "raspberry"
			s.addUser("pi", pw)
			c, err := dialRaw(s.host, s.c2s, s.domain, "pi", pw, 60*time.Second)
			if err != nil {
				t.Fatalf("login to the emulated server: %v", err)
			}
			if err := c.ping(s.domain); err != nil {
				t.Errorf("emulated server: %v", err)
			}
			c.close()
		})
	}
}
