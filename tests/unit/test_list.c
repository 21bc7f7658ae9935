/* Unit tests of common/list.h: order, removal from anywhere (twice, or never linked), iteration
 * that removes, first/last/next/prev at the ends, and members of two lists at once. */
#include "tap.h"

#include "../../common/list.h"

struct item {
    int value;
    struct list_link by_age;
    struct list_link by_kind;
};

/* The values of head's members, in order, as "1,2,3" into out. */
static const char *values(const struct list_link *head, size_t member, char *out, size_t cap)
{
    size_t len = 0;
    out[0] = '\0';
    for (const struct list_link *l = head->next; l != head && len + 12 < cap; l = l->next) {
        const struct item *it = (const struct item *)(const void *)((const char *)l - member);
        len += (size_t)snprintf(out + len, cap - len, "%s%d", len ? "," : "", it->value);
    }
    return out;
}

#define AGES(head) values((head), offsetof(struct item, by_age), buf, sizeof buf)
#define KINDS(head) values((head), offsetof(struct item, by_kind), buf, sizeof buf)

static void test_order(void)
{
    char buf[128];
    struct list_link head;
    struct item a = { .value = 1 }, b = { .value = 2 }, c = { .value = 3 }, d = { .value = 4 };
    list_init(&head);
    ok(list_empty(&head), "a new list is empty");
    ok(list_first(&head) == NULL && list_last(&head) == NULL, "and has no first or last");
    ok(!list_linked(&a.by_age), "a zeroed member is in no list");
    list_push_back(&head, &b.by_age);
    list_push_front(&head, &a.by_age);
    list_push_back(&head, &d.by_age);
    list_insert_after(&b.by_age, &c.by_age);
    is_str(AGES(&head), "1,2,3,4", "push_front, push_back and insert_after keep their places");
    ok(list_linked(&c.by_age) && !list_empty(&head), "members are linked, the list not empty");
    ok(LIST_ENTRY(list_first(&head), struct item, by_age) == &a, "first is a");
    ok(LIST_ENTRY(list_last(&head), struct item, by_age) == &d, "last is d, without a walk");
    ok(list_next(&head, &d.by_age) == NULL && list_prev(&head, &a.by_age) == NULL,
       "no next after the last, no prev before the first");
    ok(list_next(&head, &b.by_age) == &c.by_age && list_prev(&head, &b.by_age) == &a.by_age,
       "next and prev in the middle");

    list_remove(&c.by_age);
    is_str(AGES(&head), "1,2,4", "a member leaves from the middle by itself");
    ok(!list_linked(&c.by_age), "and is in no list");
    list_remove(&c.by_age);
    is_str(AGES(&head), "1,2,4", "removing it again changes nothing");
    list_remove(&a.by_age);
    list_remove(&d.by_age);
    is_str(AGES(&head), "2", "from the front and from the back");
    list_remove(&b.by_age);
    ok(list_empty(&head), "the last one out leaves the list empty");
    list_push_back(&head, &c.by_age);
    is_str(AGES(&head), "3", "a removed member can join again");
}

static void test_each(void)
{
    char buf[128];
    struct list_link head, *pos, *tmp;
    struct item items[6];
    list_init(&head);
    for (int i = 0; i < 6; i++) {
        items[i] = (struct item){ .value = i };
        list_push_back(&head, &items[i].by_age);
    }
    int sum = 0;
    LIST_EACH(pos, &head)
        sum += LIST_ENTRY(pos, struct item, by_age)->value;
    is_int(sum, 15, "LIST_EACH visits every member once");
    LIST_EACH_SAFE(pos, tmp, &head)
        if (LIST_ENTRY(pos, struct item, by_age)->value % 2 == 0)
            list_remove(pos);
    is_str(AGES(&head), "1,3,5", "LIST_EACH_SAFE may remove the member it is at");
    LIST_EACH_SAFE(pos, tmp, &head)
        list_remove(pos);
    ok(list_empty(&head), "even every one of them");
    int visits = 0;
    LIST_EACH(pos, &head)
        visits++;
    is_int(visits, 0, "an empty list is not visited");
}

static void test_two_lists(void)
{
    char buf[128];
    struct list_link ages, kinds;
    struct item a = { .value = 1 }, b = { .value = 2 };
    list_init(&ages);
    list_init(&kinds);
    list_push_back(&ages, &a.by_age);
    list_push_back(&ages, &b.by_age);
    list_push_front(&kinds, &a.by_kind);
    list_push_front(&kinds, &b.by_kind);
    is_str(AGES(&ages), "1,2", "one order in one list");
    is_str(KINDS(&kinds), "2,1", "another in the other");
    list_remove(&a.by_kind);
    is_str(AGES(&ages), "1,2", "leaving one list keeps the member in the other");
    is_str(KINDS(&kinds), "2", "and out of the one it left");
}

int main(void)
{
    test_order();
    test_each();
    test_two_lists();
    return tap_done();
}
