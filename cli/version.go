package cli

import (
	"runtime"
	"runtime/debug"
	"strings"
)

// version describes this binary, for ctl --version and engine --version.
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		bi = nil
	}
	return formatVersion(bi)
}

// formatVersion says which build bi is: the main module's version, the VCS
// revision and commit time when the build stamped them, and the Go version.
// A nil bi (a binary built without module support) is "unknown".
func formatVersion(bi *debug.BuildInfo) string {
	if bi == nil {
		return "unknown (no build information), built with " + runtime.Version()
	}
	settings := map[string]string{}
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	v := bi.Main.Version
	if v == "" || v == "(devel)" {
		v = "devel"
	}
	parts := []string{v}
	if rev := settings["vcs.revision"]; rev != "" {
		if settings["vcs.modified"] == "true" {
			rev += " (modified)"
		}
		parts = append(parts, "revision "+rev)
	}
	if t := settings["vcs.time"]; t != "" {
		parts = append(parts, "committed "+t)
	}
	goVersion := bi.GoVersion
	if goVersion == "" {
		goVersion = runtime.Version()
	}
	return strings.Join(append(parts, "built with "+goVersion), ", ")
}
