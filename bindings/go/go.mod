module github.com/stateful-route/stateful-route/bindings/go

go 1.24
