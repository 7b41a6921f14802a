/* agent/stream.h: a process's stdio relayed over the host channel as DATA,
 * CREDIT and EOF frames (the stream rules of lib/proto/proto.h).
 *
 * Output (stdout, stderr; guest -> host): the agent takes the process's
 * output only while the host has granted window. From a pipe it moves up
 * to KV_FRAME_MAX_PAYLOAD bytes per DATA frame by splice(2), one frame in
 * flight per stream, without copying them (see stream.c); from a pty
 * master it reads at most AGENT_STREAM_CHUNK bytes and sends each read as
 * one frame. A process that writes faster than the host reads blocks in
 * write(2) on a full pipe; nothing accumulates in the agent beyond the
 * granted window. All streams also pause while the channel's write queue
 * is above a high-water mark, so that a slow channel (the virtio-serial
 * port under TCG) cannot make the queue grow with the sum of all windows.
 * EOF is sent after the last byte: at end of file of the pipe, or for a
 * pty when the last slave is closed.
 *
 * Input (stdin; host -> guest): DATA is queued (at most the window the
 * agent granted, KV_STREAM_INITIAL_WINDOW) and written to the process as
 * it reads; CREDIT goes back for what was written. EOF from the host closes
 * the pipe once the queue is written (for a pty: the terminal's EOF
 * character, since the master must stay open for the output).
 *
 * Streams belong to the connection they were opened on. When it goes away
 * output is drained and dropped (processes must not block forever on a
 * pipe nobody reads) and stdin is closed.
 */
#pragma once

#include "proto.h"

#define AGENT_STREAM_CHUNK (64u * 1024u)
/* Size of the pipes a process writes its stdout/stderr into (see
 * agent_stdio_prepare): four frames, so that a writer that is not
 * preempted by the agent (bulk mode, stream.c) hands over up to 4 MiB per
 * switch. Pages exist only while the host falls behind; they
 * are charged to the writer's memory cgroup, like any pipe's. */
#define AGENT_PIPE_SIZE (4 * 1024 * 1024)
/* The relay pipe holds one frame's payload (stream.c). */
#define AGENT_RELAY_PIPE_SIZE KV_FRAME_MAX_PAYLOAD

typedef struct _AgentStream AgentStream;
/* Called once when the stream is finished: output after its EOF was sent
 * (or dropped), input once closed. The stream is freed right after. */
typedef void (*AgentStreamDoneFunc)(AgentStream *s, gpointer user);

/* FALSE (KV_E_EXISTS / KV_E_INVALID) when a non-zero id among ids is
 * already open on c or appears twice. Zero ids are "not connected". */
gboolean agent_streams_check_free(KvConn *c, const guint32 *ids, gsize n, GError **error);

/* Takes ownership of fd (made non-blocking). An output with id 0 is
 * read and dropped (a pty's output when the host asked for no stdout).
 * fd may be -1 when the process's end is not known yet (a pty that the
 * process allocates in its container): input is queued (within the
 * window) and output waits until agent_stream_set_fd(). */
AgentStream *agent_stream_new_output(KvConn *c, guint32 id, int fd, gboolean pty,
                                     AgentStreamDoneFunc done, gpointer user);
AgentStream *agent_stream_new_input(KvConn *c, guint32 id, int fd, gboolean pty,
                                    AgentStreamDoneFunc done, gpointer user);
void agent_stream_set_fd(AgentStream *s, int fd);
/* The process behind the stream exited. Input: closed now (done runs).
 * Output: read on to end of file, but if something else (a background
 * child) keeps the write end open, the stream is ended once nothing more
 * arrives for a while, so that the exit can be reported. */
void agent_stream_process_exited(AgentStream *s);
/* Drops a stream whose process never started (the request failed): no
 * EOF is sent, done is NOT called. */
void agent_stream_abort(AgentStream *s);

/* DATA, CREDIT and EOF frames from the host. */
void agent_streams_on_frame(KvConn *c, const KvFrame *f);
/* c went away: see above. */
void agent_streams_conn_closed(KvConn *c);
