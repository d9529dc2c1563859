//go:build !withcluster

package main

func start() error { return nil }
