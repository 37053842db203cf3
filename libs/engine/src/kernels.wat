;; The engine's per-row loops over a layer's rows, in WebAssembly SIMD (routing.ts calls
;; them; its JavaScript versions are the reference and the fallback).
;;
;; mix2: the end of an MoE block with top-2 routing (mixAndCombine, computed bitwise):
;; for each row r of D floats,
;;
;;   out = h1 + gate[r / T] * fround(fround(base + y1 * w1) + y2 * w2)
;;
;; every product, sum and rounding exactly as the JavaScript expression evaluates it:
;; float32 operands widened to float64 (f64x2.promote_low_f32x4), float64 multiply and
;; add, a float32 rounding (f32x4.demote_f64x2_zero, round to nearest even) where the
;; JavaScript calls Math.fround and where it stores into a Float32Array. Two lanes of
;; float64 per instruction: at 3136 rows of 128 the kernel takes ~0.55 ms where the
;; JavaScript loop takes ~3.5 ms (the whole call, with its copies, 1.1-1.75 ms).
;;
;; Rebuild kernels-wasm.ts after editing: npm run build:wasm
;; (a test fails while the committed bytes differ from this source's).
(module
  (memory (export "memory") 1)

  ;; Arguments are byte addresses in memory. yoff: [R][2] i32 byte addresses of each row's
  ;; two expert output rows; w: [R][2] f32 their routing weights; h: [R][D] f32 h1, which
  ;; is overwritten with the result; gate: [B][D] f32; base: [R][D] f32 (zeros for no
  ;; shared expert). D is a multiple of 4.
  (func (export "mix2")
    (param $yoff i32) (param $w i32) (param $h i32) (param $gate i32) (param $base i32)
    (param $R i32) (param $T i32) (param $D i32)
    (local $r i32) (local $d i32) (local $rowBytes i32) (local $ho i32) (local $go i32) (local $bo i32)
    (local $y1 i32) (local $y2 i32) (local $pair i32)
    (local $w1 v128) (local $w2 v128)
    (local $hv v128) (local $gv v128) (local $bv v128) (local $v1 v128) (local $v2 v128)
    (local $acc v128) (local $lo v128)
    (local.set $rowBytes (i32.shl (local.get $D) (i32.const 2)))
    (block $done
      (loop $rows
        (br_if $done (i32.ge_u (local.get $r) (local.get $R)))
        (local.set $pair (i32.shl (local.get $r) (i32.const 3)))
        (local.set $y1 (i32.load (i32.add (local.get $yoff) (local.get $pair))))
        (local.set $y2 (i32.load offset=4 (i32.add (local.get $yoff) (local.get $pair))))
        (local.set $w1 (f64x2.splat (f64.promote_f32 (f32.load (i32.add (local.get $w) (local.get $pair))))))
        (local.set $w2 (f64x2.splat (f64.promote_f32 (f32.load offset=4 (i32.add (local.get $w) (local.get $pair))))))
        (local.set $ho (i32.add (local.get $h) (i32.mul (local.get $r) (local.get $rowBytes))))
        (local.set $bo (i32.add (local.get $base) (i32.mul (local.get $r) (local.get $rowBytes))))
        (local.set $go (i32.add (local.get $gate) (i32.mul (i32.div_u (local.get $r) (local.get $T)) (local.get $rowBytes))))
        (local.set $d (i32.const 0))
        (loop $cols
          (local.set $hv (v128.load (i32.add (local.get $ho) (local.get $d))))
          (local.set $gv (v128.load (i32.add (local.get $go) (local.get $d))))
          (local.set $bv (v128.load (i32.add (local.get $bo) (local.get $d))))
          (local.set $v1 (v128.load (i32.add (local.get $y1) (local.get $d))))
          (local.set $v2 (v128.load (i32.add (local.get $y2) (local.get $d))))

          ;; lanes 0 and 1
          (local.set $acc (f64x2.promote_low_f32x4 (f32x4.demote_f64x2_zero
            (f64x2.add (f64x2.promote_low_f32x4 (local.get $bv))
                       (f64x2.mul (f64x2.promote_low_f32x4 (local.get $v1)) (local.get $w1))))))
          (local.set $acc (f64x2.promote_low_f32x4 (f32x4.demote_f64x2_zero
            (f64x2.add (local.get $acc)
                       (f64x2.mul (f64x2.promote_low_f32x4 (local.get $v2)) (local.get $w2))))))
          (local.set $lo (f32x4.demote_f64x2_zero
            (f64x2.add (f64x2.promote_low_f32x4 (local.get $hv))
                       (f64x2.mul (f64x2.promote_low_f32x4 (local.get $gv)) (local.get $acc)))))

          ;; lanes 2 and 3: moved down to 0 and 1 first
          (local.set $hv (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $hv) (local.get $hv)))
          (local.set $gv (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $gv) (local.get $gv)))
          (local.set $bv (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $bv) (local.get $bv)))
          (local.set $v1 (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $v1) (local.get $v1)))
          (local.set $v2 (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $v2) (local.get $v2)))
          (local.set $acc (f64x2.promote_low_f32x4 (f32x4.demote_f64x2_zero
            (f64x2.add (f64x2.promote_low_f32x4 (local.get $bv))
                       (f64x2.mul (f64x2.promote_low_f32x4 (local.get $v1)) (local.get $w1))))))
          (local.set $acc (f64x2.promote_low_f32x4 (f32x4.demote_f64x2_zero
            (f64x2.add (local.get $acc)
                       (f64x2.mul (f64x2.promote_low_f32x4 (local.get $v2)) (local.get $w2))))))
          (local.set $acc (f32x4.demote_f64x2_zero
            (f64x2.add (f64x2.promote_low_f32x4 (local.get $hv))
                       (f64x2.mul (f64x2.promote_low_f32x4 (local.get $gv)) (local.get $acc)))))

          (v128.store (i32.add (local.get $ho) (local.get $d))
            (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 (local.get $lo) (local.get $acc)))
          (local.set $d (i32.add (local.get $d) (i32.const 16)))
          (br_if $cols (i32.lt_u (local.get $d) (local.get $rowBytes))))
        (local.set $r (i32.add (local.get $r) (i32.const 1)))
        (br $rows))))
;; gather: dst[i] = src[rows[i]] for i < n, rows of D floats (D a multiple of 4); rows
  ;; is an i32 array of row indices. Copies 16 bytes per instruction with no allocation,
  ;; where the JavaScript makes a subarray per row for TypedArray#set.
  (func (export "gather") (param $dst i32) (param $src i32) (param $rows i32) (param $n i32) (param $D i32)
    (local $i i32) (local $d i32) (local $rowBytes i32) (local $s i32) (local $t i32)
    (local.set $rowBytes (i32.shl (local.get $D) (i32.const 2)))
    (block $done
      (loop $each
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $s (i32.add (local.get $src)
          (i32.mul (i32.load (i32.add (local.get $rows) (i32.shl (local.get $i) (i32.const 2)))) (local.get $rowBytes))))
        (local.set $t (i32.add (local.get $dst) (i32.mul (local.get $i) (local.get $rowBytes))))
        (local.set $d (i32.const 0))
        (loop $cols
          (v128.store (i32.add (local.get $t) (local.get $d)) (v128.load (i32.add (local.get $s) (local.get $d))))
          (local.set $d (i32.add (local.get $d) (i32.const 16)))
          (br_if $cols (i32.lt_u (local.get $d) (local.get $rowBytes))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $each))))
)
