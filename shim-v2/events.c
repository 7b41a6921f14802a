/* shim-v2/events.c: events to containerd, as its own shims send them
 * without a ttrpc connection back: the publish binary containerd named
 * (-publish-binary), run as
 *   PUBLISH_BINARY --address ADDR publish --topic TOPIC --namespace NS
 * with a google.protobuf.Any (type_url containerd.events.X, the packed
 * event) on its stdin. One thread runs them in order. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "google/protobuf/any.pb-c.h"
#include "shim.h"

typedef struct {
  char *topic;
  uint8_t *any;
  size_t len;
} Event;

static GAsyncQueue *queue;
static GThread *thread;
static gint pending;

static void publish_one(Shim *s, Event *ev) {
  if (!s->publish_binary || !*s->publish_binary) {
    shim_log("event %s not published: no -publish-binary", ev->topic);
    return;
  }
  int p[2];
  if (pipe2(p, O_CLOEXEC) < 0)
    return;
  pid_t pid = fork();
  if (pid == 0) {
    dup2(p[0], 0);
    int null = open("/dev/null", O_WRONLY);
    if (null >= 0)
      dup2(null, 1);
    execl(s->publish_binary, s->publish_binary, "--address", s->address, "publish", "--topic",
          ev->topic, "--namespace", s->ns, (char *)NULL);
    _exit(127);
  }
  close(p[0]);
  if (pid > 0) {
    size_t off = 0;
    while (off < ev->len) {
      ssize_t w = write(p[1], ev->any + off, ev->len - off);
      if (w < 0 && errno == EINTR)
        continue;
      if (w <= 0)
        break;
      off += (size_t)w;
    }
  }
  close(p[1]);
  if (pid > 0) {
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
      ;
    if (!WIFEXITED(st) || WEXITSTATUS(st))
      shim_log("publish %s: the publish binary failed (status %d)", ev->topic, st);
  }
}

static gpointer run(gpointer data) {
  for (;;) {
    Event *ev = g_async_queue_pop(queue);
    publish_one(data, ev);
    g_free(ev->topic);
    g_free(ev->any);
    g_free(ev);
    g_atomic_int_dec_and_test(&pending);
  }
  return NULL;
}

void events_publish(Shim *s, const char *topic, const char *type_name, uint8_t *packed,
                    size_t len) {
  if (g_once_init_enter(&queue)) {
    GAsyncQueue *q = g_async_queue_new();
    g_once_init_leave(&queue, q);
    thread = g_thread_new("events", run, s);
  }
  Google__Protobuf__Any any = GOOGLE__PROTOBUF__ANY__INIT;
  any.type_url = (char *)type_name;
  any.value.data = packed;
  any.value.len = len;
  Event *ev = g_new0(Event, 1);
  ev->topic = g_strdup(topic);
  ev->len = google__protobuf__any__get_packed_size(&any);
  ev->any = g_malloc(ev->len);
  google__protobuf__any__pack(&any, ev->any);
  g_atomic_int_inc(&pending);
  g_async_queue_push(queue, ev);
}

void events_flush(void) {
  for (int i = 0; i < 100 && g_atomic_int_get(&pending) > 0; i++)
    g_usleep(50000);
}
