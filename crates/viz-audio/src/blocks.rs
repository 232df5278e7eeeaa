//! Block-at-a-time processing for sample streams that arrive in any chunk size: the
//! noise suppressor, gain control and voice gate each decide on whole 10 ms blocks.
//! Samples go in and come out one for one, a block later: a block is handed to the
//! processing when it is whole and comes out while the next one fills.

pub(crate) struct BlockDelay<const N: usize> {
    block: [f32; N],
    pos: usize,
}

impl<const N: usize> BlockDelay<N> {
    pub(crate) fn new() -> Self {
        Self { block: [0.0; N], pos: 0 }
    }

    /// Feeds `input` and appends as many samples to `output`. Each time a block is
    /// whole, `on_block` may change it in place before it comes out.
    pub(crate) fn process(&mut self, input: &[f32], output: &mut Vec<f32>, mut on_block: impl FnMut(&mut [f32; N])) {
        output.reserve(input.len());
        for &x in input {
            output.push(self.block[self.pos]);
            self.block[self.pos] = x;
            self.pos += 1;
            if self.pos == N {
                self.pos = 0;
                on_block(&mut self.block);
            }
        }
    }
}

impl<const N: usize> std::fmt::Debug for BlockDelay<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockDelay").field("len", &N).field("pos", &self.pos).finish()
    }
}
