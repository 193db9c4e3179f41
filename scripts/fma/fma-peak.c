// The machine's AVX-512 arithmetic peaks: 12 independent chains per thread (enough to hide the
// latency) of 16-lane f32 fused multiply-adds (32 flops each), and, where the CPU has them, of
// bf16 dot products (vdpbf16ps: 32 bf16 pairs into 16 f32 lanes, 64 flops) and int8 dot products
// (vpdpbusd: 64 u8 x s8 pairs into 16 i32 lanes, 128 ops), on 1 thread, then on 2 (one per core
// here). What a prefill kernel can reach at most with each kind of arithmetic;
// scripts/bench-fma-peak.sh builds and runs it.
#include <immintrin.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <pthread.h>
static double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
typedef struct { long n; int kind; float out; } job;
__attribute__((target("avx512f")))
static float fma_chains(long n){
  __m512 a[12]; __m512 b=_mm512_set1_ps(1.0000001f), c=_mm512_set1_ps(1e-7f);
  for(int i=0;i<12;i++) a[i]=_mm512_set1_ps(i);
  for(long i=0;i<n;i++){
    #pragma GCC unroll 12
    for(int j=0;j<12;j++) a[j]=_mm512_fmadd_ps(a[j],b,c);
  }
  float s=0; for(int i=0;i<12;i++) s+=_mm512_reduce_add_ps(a[i]);
  return s;
}
__attribute__((target("avx512f,avx512bf16")))
static float bf16_chains(long n){
  __m512 a[12]; __m512bh b=(__m512bh)_mm512_set1_epi16(0x3f80), c=(__m512bh)_mm512_set1_epi16(0x3380);
  for(int i=0;i<12;i++) a[i]=_mm512_set1_ps(i);
  for(long i=0;i<n;i++){
    #pragma GCC unroll 12
    for(int j=0;j<12;j++) a[j]=_mm512_dpbf16_ps(a[j],b,c);
  }
  float s=0; for(int i=0;i<12;i++) s+=_mm512_reduce_add_ps(a[i]);
  return s;
}
__attribute__((target("avx512f,avx512vnni")))
static float vnni_chains(long n){
  __m512i a[12]; __m512i b=_mm512_set1_epi8(1), c=_mm512_set1_epi8(-1);
  for(int i=0;i<12;i++) a[i]=_mm512_set1_epi32(i);
  for(long i=0;i<n;i++){
    #pragma GCC unroll 12
    for(int j=0;j<12;j++) a[j]=_mm512_dpbusd_epi32(a[j],b,c);
  }
  long s=0; for(int i=0;i<12;i++) s+=_mm512_reduce_add_epi32(a[i]);
  return (float)s;
}
static void* work(void* arg){
  job* j=arg;
  j->out = j->kind==0 ? fma_chains(j->n) : j->kind==1 ? bf16_chains(j->n) : vnni_chains(j->n);
  return 0;
}
int main(int argc, char** argv){
  long n=200000000;
  const char* names[3]={"f32 FMA", "bf16 dot (vdpbf16ps)", "int8 dot (vpdpbusd)"};
  const char* units[3]={"GFLOP/s", "GFLOP/s", "GOP/s"};
  const double ops[3]={32, 64, 128};
  int kinds = argc > 1 && !strcmp(argv[1], "all") ? 3 : 1;
  for(int kind=0;kind<kinds;kind++){
    if(kind==1 && !__builtin_cpu_supports("avx512bf16")) { printf("%s: not on this CPU\n", names[kind]); continue; }
    if(kind==2 && !__builtin_cpu_supports("avx512vnni")) { printf("%s: not on this CPU\n", names[kind]); continue; }
    for(int th=1;th<=2;th++){
      pthread_t t[2]; job jobs[2]={{n,kind,0},{n,kind,0}};
      double t0=now();
      for(int i=0;i<th;i++) pthread_create(&t[i],0,work,&jobs[i]);
      for(int i=0;i<th;i++) pthread_join(t[i],0);
      double dt=now()-t0;
      printf("%s%s%d threads: %.1f %s\n", kinds > 1 ? names[kind] : "", kinds > 1 ? ", " : "", th, th*(double)n*12*ops[kind]/dt/1e9, units[kind]);
    }
  }
}
