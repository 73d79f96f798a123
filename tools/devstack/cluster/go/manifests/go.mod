// Modules read for their manifests, not built: prometheus-operator (its CRDs). `go mod download` verifies them
// against go.sum (prizeflow_devstack.cluster.operators).
module prizeflow.local/cluster/manifests

go 1.24.0

require github.com/prometheus-operator/prometheus-operator v0.85.0 // indirect
