/* agent/signals.h: signals and child processes of the agent.
 *
 * All signals the agent cares about are blocked in every thread and read
 * from a signalfd on the main loop, so handlers run as ordinary main-loop
 * code. As PID 1 the agent inherits every orphan in the VM: SIGCHLD reaps
 * all exited children (waitpid(-1)) and hands the status to whoever
 * registered that pid with agent_child_watch(); unknown children are just
 * reaped. Do not use g_child_watch_add() or waitpid(pid) elsewhere: the
 * reaper would race them for the exit status.
 */
#pragma once

#include <glib.h>
#include <sys/types.h>

typedef void (*AgentChildFunc)(pid_t pid, int wait_status, gpointer user);
typedef void (*AgentSignalFunc)(int signo, gpointer user);

/* Blocks the handled signals. Call first thing in main(), before any
 * thread exists, so that every thread inherits the mask. */
void agent_signals_block(void);
/* Starts reading them on the default main context. */
void agent_signals_attach(void);
/* Calls func on the main loop when signo arrives (one handler per signal;
 * SIGCHLD is taken by the reaper). signo must be one of SIGTERM, SIGINT,
 * SIGPWR, SIGHUP, SIGIO. */
void agent_signal_connect(int signo, AgentSignalFunc func, gpointer user);
/* Calls func once when pid exits. Register right after fork(), from the
 * main thread, and the exit cannot be missed: reaping only happens on the
 * main loop. */
void agent_child_watch(pid_t pid, AgentChildFunc func, gpointer user);
/* For a freshly forked child before exec: restore the signal mask the
 * agent started with, so that the child is not born with signals blocked. */
void agent_signals_reset_in_child(void);
