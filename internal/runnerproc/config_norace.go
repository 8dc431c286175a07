//go:build !race

package runnerproc

// raceEnabled reports whether this binary was built with the race detector.
const raceEnabled = false
