package c2s

import "syscall"

// syscallEMFILE is "too many open files", a temporary accept error.
const syscallEMFILE = syscall.EMFILE
