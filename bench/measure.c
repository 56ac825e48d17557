/* measure: run a command, report its wall time and peak RSS exactly.
 *
 *   measure FD COMMAND [ARGS...]
 *
 * Writes "<wall_ns> <maxrss_kb>\n" to file descriptor FD and exits with the
 * command's exit code (128+N when killed by signal N; 127 when it cannot be run).
 *
 * Why not time it from Python: a child forked (or vforked) by a process keeps
 * that process's RSS high-water mark across exec in ru_maxrss, so every tool
 * started by the ~20 MB Python harness would "use" 20 MB. This launcher is
 * small and static; the command's fork starts from its few hundred kB. GNU
 * time measures RSS the same way but adds ~0.7 ms of its own startup to a
 * wall time taken around it; here the clock runs from just before fork to
 * just after wait4, so only fork+exec+run+exit is counted.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char** argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: measure FD COMMAND [ARGS...]\n");
    return 2;
  }
  int fd = atoi(argv[1]);
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  pid_t pid = fork();
  if (pid < 0) {
    perror("measure: fork");
    return 127;
  }
  if (pid == 0) {
    close(fd);
    execvp(argv[2], argv + 2);
    fprintf(stderr, "measure: cannot run %s: %s\n", argv[2], strerror(errno));
    _exit(errno == ENOENT ? 127 : 126);
  }
  int status;
  struct rusage ru;
  while (wait4(pid, &status, 0, &ru) < 0) {
    if (errno != EINTR) {
      perror("measure: wait4");
      return 127;
    }
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  long long ns = (long long)(t1.tv_sec - t0.tv_sec) * 1000000000LL + (t1.tv_nsec - t0.tv_nsec);
  dprintf(fd, "%lld %ld\n", ns, ru.ru_maxrss);
  close(fd);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return WEXITSTATUS(status);
}
