//go:build !cgo

package runnerproc

// cgoEnabled is the CGO_ENABLED this binary was built with.
const cgoEnabled = "0"
