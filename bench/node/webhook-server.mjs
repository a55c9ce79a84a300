import crypto from 'crypto'
import http from 'http'

const secret = process.env.WATSI_WEBHOOK_SECRET ?? ''

function verifySignature(rawBody, signature) {
  if (!signature) return false
  const computed = crypto.createHmac('sha256', secret).update(rawBody).digest('hex')
  const expectedBuf = Buffer.from(String(signature), 'utf8')
  const computedBuf = Buffer.from(computed, 'utf8')
  return expectedBuf.length === computedBuf.length && crypto.timingSafeEqual(expectedBuf, computedBuf)
}

http.createServer((req, res) => {
  if (req.method !== 'POST' || req.url !== '/webhooks/watsi') {
    res.writeHead(404)
    res.end()
    return
  }

  const chunks = []
  req.on('data', (chunk) => chunks.push(chunk))
  req.on('end', () => {
    const rawBody = Buffer.concat(chunks)
    const signature = req.headers['x-watsi-signature']

    if (!verifySignature(rawBody, signature)) {
      res.writeHead(401)
      res.end('Invalid signature')
      return
    }

    const event = JSON.parse(rawBody.toString('utf8'))
    console.log('verified event', event.type, event.id)
    res.writeHead(200)
    res.end('OK')
  })
}).listen(4000)
