// Package syncbuf is a bytes.Buffer that several goroutines may write while another reads it:
// what a child process's output or a test's log handler writes to.
package syncbuf
