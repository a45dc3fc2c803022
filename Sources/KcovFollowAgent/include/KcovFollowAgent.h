#ifndef KCOVFOLLOWAGENT_H
#define KCOVFOLLOWAGENT_H
// libKcovFollowAgent.so exports no API of its own: loaded with LD_PRELOAD, it wraps pthread_create,
// fork, vfork, the exec functions, _exit and _Exit (Docs/follow.md).
#endif
