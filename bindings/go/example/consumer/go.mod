// A program outside the fidius module that uses it, as yours would: the
// module path libfidius.invalid/fidius is not fetchable, so a replace
// directive points at a checkout of bindings/go (here the one this directory
// sits in). `make test-go` builds and runs it, and builds it again from a
// `go mod vendor` copy.
module example.invalid/consumer

go 1.19

require libfidius.invalid/fidius v0.0.0

replace libfidius.invalid/fidius => ../..
