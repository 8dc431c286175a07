package firestoretest

import (
	"fmt"
	"hash/fnv"
	"os"
	"os/exec"
	"path/filepath"
)

// The emulator is a Java server, and on a two-core machine most of its
// start is the JVM loading, verifying and compiling its classes: half a
// minute to the first write when idle, over a minute while other tests
// run. Three things cut it, none of which changes the emulator itself:
//
//   - The component's own launcher (the script gcloud runs) is started
//     directly when it is found beside gcloud, with the flags gcloud passes.
//     gcloud's Python start costs seconds of CPU on every start.
//   - The JVM compiles with its quick compiler only and collects with the
//     serial collector: a test emulator lives minutes, not days.
//   - Class data sharing: the first emulator records the classes it loaded
//     (those of the warm-up's calls included) into an archive in the user's
//     cache when it stops; later starts map them from there instead of
//     loading them from the 50 MB jar. A stale or broken archive is ignored
//     by the JVM, which then loads the classes as usual.

// jvmOptions are the start-up options given to the emulator's JVM.
const jvmOptions = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"

// emulatorCommand returns the command that starts the emulator on host:port
// and, when a class archive is being recorded, the path the JVM writes it
// to (to be moved to archive once the emulator has stopped).
func emulatorCommand(host, port string) (cmd *exec.Cmd, recording, archive string) {
	launcher := componentLauncher()
	if launcher != "" {
		cmd = exec.Command(launcher, "start", "--host="+host, "--port="+port, "--database-mode=firestore-native")
	} else {
		cmd = exec.Command("gcloud", "emulators", "firestore", "start", "--host-port="+host+":"+port)
	}
	opts := jvmOptions
	if archive = archivePath(launcher); archive != "" {
		if _, err := os.Stat(archive); err == nil {
			opts += " -XX:SharedArchiveFile=" + archive
		} else if err := os.MkdirAll(filepath.Dir(archive), 0o755); err == nil {
			recording = fmt.Sprintf("%s.%d.tmp", archive, os.Getpid())
			opts += " -XX:ArchiveClassesAtExit=" + recording
		}
	}
	if prev := os.Getenv("JAVA_TOOL_OPTIONS"); prev != "" {
		opts = prev + " " + opts
	}
	cmd.Env = append(os.Environ(), "CLOUDSDK_CORE_DISABLE_PROMPTS=1", "JAVA_TOOL_OPTIONS="+opts)
	return cmd, recording, archive
}

// componentLauncher returns the path of the cloud-firestore-emulator
// component's launcher script in the Cloud SDK that gcloud belongs to, or ""
// when it is not there.
func componentLauncher() string {
	gcloud, err := exec.LookPath("gcloud")
	if err != nil {
		return ""
	}
	if gcloud, err = filepath.EvalSymlinks(gcloud); err != nil {
		return ""
	}
	// gcloud is SDK_ROOT/bin/gcloud.
	launcher := filepath.Join(filepath.Dir(filepath.Dir(gcloud)), "platform", "cloud-firestore-emulator", "cloud_firestore_emulator")
	if fi, err := os.Stat(launcher); err != nil || fi.Mode()&0o111 == 0 {
		return ""
	}
	return launcher
}

// archivePath returns where the class archive for this emulator and JVM is
// kept, or "" when there is no cache directory or nothing to key it by. The
// name changes with the emulator's jar and the java binary, so that an
// update records a new archive.
func archivePath(launcher string) string {
	if launcher == "" {
		return ""
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	java, err := exec.LookPath("java")
	if err != nil {
		return ""
	}
	if java, err = filepath.EvalSymlinks(java); err != nil {
		return ""
	}
	h := fnv.New64a()
	for _, f := range []string{filepath.Join(filepath.Dir(launcher), "cloud-firestore-emulator.jar"), java} {
		fi, err := os.Stat(f)
		if err != nil {
			return ""
		}
		fmt.Fprintf(h, "%s %d %d\n", f, fi.Size(), fi.ModTime().UnixNano())
	}
	fmt.Fprintln(h, jvmOptions)
	return filepath.Join(cache, "gmail-oauth-functions", fmt.Sprintf("firestore-emulator-%x.jsa", h.Sum64()))
}

// keepArchive moves the archive recorded by a stopped emulator into place,
// or removes what a killed one left.
func keepArchive(recording, archive string, clean bool) {
	if recording == "" {
		return
	}
	fi, err := os.Stat(recording)
	if err == nil && clean && fi.Size() > 0 {
		if os.Rename(recording, archive) == nil {
			return
		}
	}
	os.Remove(recording)
}
