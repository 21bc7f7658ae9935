/* list: the one intrusive doubly linked list of the server — a member embeds a struct list_link,
 * a list is a head link that points at itself when empty (Linux's list_head, in the small).
 *
 * Why its own: the lists it replaces (fetches, issuer entries and their waiters, identity
 * requests, sessions, AppService connections, keep-alive) were each written by hand with NULL
 * ends and a special case for the first member; a sentinel head has none, so adding and removing
 * are the same four assignments everywhere, and the last member is found at once. libuv keeps its
 * QUEUE to itself (not installed); <sys/queue.h>'s TAILQ needs the head to remove a member, and
 * its LIST has no last member: here a member leaves its list by itself (a cancelled wait, a closed
 * connection) and the oldest is at head->prev.
 *
 * A member's link is all zero while it is in no list: a calloc'd or memset struct is unlinked,
 * removing an unlinked member does nothing, and list_linked() tells which. A head must be
 * list_init()ed before use and must not be copied. */
#ifndef PRESENCED_LIST_H
#define PRESENCED_LIST_H

#include <stdbool.h>
#include <stddef.h>

struct list_link {
    struct list_link *next, *prev; /* a member in no list: both NULL */
};

/* The struct of type that holds link as its member. */
#define LIST_ENTRY(link, type, member) ((type *)(void *)((char *)(link)-offsetof(type, member)))

/* Every link of head, in order; the body must not remove pos (see LIST_EACH_SAFE). */
#define LIST_EACH(pos, head) for ((pos) = (head)->next; (pos) != (head); (pos) = (pos)->next)

/* The same, where the body may remove (and free) pos; tmp holds the next one. */
#define LIST_EACH_SAFE(pos, tmp, head)                                                             \
    for ((pos) = (head)->next, (tmp) = (pos)->next; (pos) != (head);                               \
         (pos) = (tmp), (tmp) = (pos)->next)

static inline void list_init(struct list_link *head)
{
    head->next = head->prev = head;
}

static inline bool list_empty(const struct list_link *head)
{
    return head->next == head;
}

/* Whether a member is in a list. */
static inline bool list_linked(const struct list_link *link)
{
    return link->next != NULL;
}

/* Links link (in no list) right after at (the head, or a member). */
static inline void list_insert_after(struct list_link *at, struct list_link *link)
{
    link->prev = at;
    link->next = at->next;
    at->next->prev = link;
    at->next = link;
}

static inline void list_push_front(struct list_link *head, struct list_link *link)
{
    list_insert_after(head, link);
}

static inline void list_push_back(struct list_link *head, struct list_link *link)
{
    list_insert_after(head->prev, link);
}

/* Unlinks link from its list; a link in no list is left as it is. */
static inline void list_remove(struct list_link *link)
{
    if (link->next == NULL)
        return;
    link->prev->next = link->next;
    link->next->prev = link->prev;
    link->next = link->prev = NULL;
}

/* The first or last member, or NULL when the list is empty. */
static inline struct list_link *list_first(const struct list_link *head)
{
    return head->next != head ? head->next : NULL;
}

static inline struct list_link *list_last(const struct list_link *head)
{
    return head->prev != head ? head->prev : NULL;
}

/* The member after or before link in head's list, or NULL at its end. */
static inline struct list_link *list_next(const struct list_link *head,
                                          const struct list_link *link)
{
    return link->next != head ? link->next : NULL;
}

static inline struct list_link *list_prev(const struct list_link *head,
                                          const struct list_link *link)
{
    return link->prev != head ? link->prev : NULL;
}

#endif
