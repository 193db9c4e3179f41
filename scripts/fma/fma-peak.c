// The machine's AVX-512 FMA peak: 12 independent chains of 16-lane fused multiply-adds per
// thread (enough to hide the FMA latency), on 1 thread, then on 2 (one per core here). What a
// prefill kernel can reach at most; scripts/bench-fma-peak.sh builds and runs it.
#include <immintrin.h>
#include <stdio.h>
#include <time.h>
#include <pthread.h>
static double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
static void* work(void* arg){
  __m512 a[12]; __m512 b=_mm512_set1_ps(1.0000001f), c=_mm512_set1_ps(1e-7f);
  for(int i=0;i<12;i++) a[i]=_mm512_set1_ps(i);
  long n=*(long*)arg;
  for(long i=0;i<n;i++){
    #pragma GCC unroll 12
    for(int j=0;j<12;j++) a[j]=_mm512_fmadd_ps(a[j],b,c);
  }
  float s=0; for(int i=0;i<12;i++) s+=_mm512_reduce_add_ps(a[i]);
  *(float*)arg = s; return 0;
}
int main(){
  long n=200000000;
  for(int th=1;th<=2;th++){
    pthread_t t[2]; long args[2]={n,n};
    double t0=now();
    for(int i=0;i<th;i++) pthread_create(&t[i],0,work,&args[i]);
    for(int i=0;i<th;i++) pthread_join(t[i],0);
    double dt=now()-t0;
    printf("%d threads: %.1f GFLOP/s\n", th, th*(double)n*12*16*2/dt/1e9);
  }
}
